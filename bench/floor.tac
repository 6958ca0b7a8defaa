# The floor under an idle fjmcp (bench/idle_memory.py starts it with
# `twistd -n --pidfile= -y bench/floor.tac`): the same stack with none of
# fjmcp. twistd, a Klein route (/healthz) served by twisted.web on one
# loopback port, SQLite through adbapi (one thread, one query), AES-GCM from
# cryptography; FLOOR_PORT and FLOOR_DIR come from the environment.
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from klein import Klein
from twisted.application import service, strports
from twisted.enterprise import adbapi
from twisted.web.server import Site

app = Klein()


@app.route("/healthz")
def health(request):
    return b"ok"


sealer = AESGCM(AESGCM.generate_key(bit_length=256))
store = adbapi.ConnectionPool(
    "sqlite3",
    os.path.join(os.environ["FLOOR_DIR"], "floor.sqlite3"),
    cp_min=1,
    cp_max=1,
    check_same_thread=False,
)
store.runQuery("select 1")
application = service.Application("floor")
strports.service(
    f"tcp:{os.environ['FLOOR_PORT']}:interface=127.0.0.1", Site(app.resource())
).setServiceParent(application)
