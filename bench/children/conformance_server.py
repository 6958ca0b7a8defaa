#!/usr/bin/env python3
# -*- test-case-name: tests.test_conventions -*-
"""Dependency-free *stdio* MCP server exposing the tools, resources and prompts
that the official conformance suite's server scenarios expect
(@modelcontextprotocol/conformance 0.1.16; names and payloads follow the
suite's published server requirements: test_simple_text, test://static-text,
test_simple_prompt, ...).

fjmcp's copy of the harness's child (../shared/bench/children), extended for
the 2026-07-28 scenarios of the pre-release 0.2.0-alpha.12: it still speaks
the 2025 session protocol (fjmcp translates), and adds the diagnostic tools
of `server-stateless` (test_missing_capability, test_streaming_elicitation,
test_logging_tool, test_trigger_tool_change, test_trigger_prompt_change)
and the input-required fixtures (test_input_required_result_*, the prompt
test_input_required_result_prompt). Those ask the client with ordinary
server->client requests whose JSON-RPC ids are the keys the suite expects
("user_name", "capital_question", ...): fjmcp turns them into an
InputRequiredResult keyed by those ids.

The suite's own reference server only speaks Streamable HTTP, so it cannot sit
behind a stdio bridge. This child can: put it behind a bridge and run the
suite against the bridge's URL, and failures are then about the bridge, not
about a missing tool. It exercises the paths a bridge must relay:
  * responses, errors, isError results
  * notifications emitted *during* a request (logging, progress)
  * server->client requests (sampling/createMessage, elicitation/create)
    answered by the HTTP client and routed back to this process
  * unsolicited notifications (resources/updated every 3 s while subscribed)

Newline-delimited JSON-RPC on stdin/stdout, one line per message, flushed.
tools/call runs in a worker thread so the reader keeps reading while a tool
waits for the client's answer to a sampling/elicitation request.

Env: ECHO_REQUIRE_TOKEN=VARNAME -> exit(3) unless $VARNAME is non-empty
(same contract as echo_server.py).
"""
import json
import os
import sys
import threading
import time

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST = "2025-11-25"
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
WAV_MIN = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

_out_lock = threading.Lock()
_pending = {}          # id of our server->client request -> [Event, reply]
_pending_lock = threading.Lock()
_next_srv_id = [0]
_state = {"log_level": "info", "subscriptions": set()}


def send(msg):
    data = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
    with _out_lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def result(mid, res):
    send({"jsonrpc": "2.0", "id": mid, "result": res})


def error(mid, code, message):
    send({"jsonrpc": "2.0", "id": mid, "error": {"code": code, "message": message}})


def notify(method, params):
    send({"jsonrpc": "2.0", "method": method, "params": params})


def log(level, data):
    if LEVELS.index(level) >= LEVELS.index(_state["log_level"]):
        notify("notifications/message", {"level": level, "logger": "conformance-stdio-child", "data": data})


def ask_client(method, params, timeout=30.0, rid=None):
    """Send a server->client request (id ``rid`` if given) and wait for the answer."""
    with _pending_lock:
        _next_srv_id[0] += 1
        rid = rid or f"srv-{_next_srv_id[0]}"
        slot = [threading.Event(), None]
        _pending[rid] = slot
    send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    if not slot[0].wait(timeout):
        with _pending_lock:
            if _pending.get(rid) is slot:
                del _pending[rid]
        raise TimeoutError(f"no answer to {method} within {timeout}s")
    reply = slot[1]
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error'].get('message')}")
    return reply.get("result") or {}


def text(t):
    return {"content": [{"type": "text", "text": t}]}


# ----------------------------------------------------------------- catalogue
EMPTY = {"type": "object", "properties": {}}
TOOLS = [
    {"name": "test_simple_text", "description": "Tests simple text content response", "inputSchema": EMPTY},
    {"name": "test_image_content", "description": "Tests image content response", "inputSchema": EMPTY},
    {"name": "test_audio_content", "description": "Tests audio content response", "inputSchema": EMPTY},
    {"name": "test_embedded_resource", "description": "Tests embedded resource content response", "inputSchema": EMPTY},
    {"name": "test_multiple_content_types", "description": "Tests text + image + resource in one result",
     "inputSchema": EMPTY},
    {"name": "test_tool_with_logging", "description": "Emits 3 log notifications while running", "inputSchema": EMPTY},
    {"name": "test_tool_with_progress", "description": "Reports progress 0/50/100 of 100", "inputSchema": EMPTY},
    {"name": "test_error_handling", "description": "Always fails (isError result)", "inputSchema": EMPTY},
    {"name": "test_sampling", "description": "Asks the client for sampling/createMessage",
     "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}},
    {"name": "test_elicitation", "description": "Asks the client for elicitation/create",
     "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
    {"name": "test_elicitation_sep1034_defaults", "description": "Elicitation with defaults (SEP-1034)",
     "inputSchema": EMPTY},
    {"name": "test_elicitation_sep1330_enums", "description": "Elicitation with enum variants (SEP-1330)",
     "inputSchema": EMPTY},
    {"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features",
     # The pre-release's fixture (SEP-1613 and SEP-2106 keywords).
     "inputSchema": {
         "$schema": "https://json-schema.org/draft/2020-12/schema",
         "type": "object",
         "$defs": {"address": {"$anchor": "addressDef", "type": "object", "properties": {
             "street": {"type": "string"}, "city": {"type": "string"}}}},
         "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                        "phone": {"type": "string"}, "email": {"type": "string"}},
         "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
         "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
         "then": {"required": ["phone"]},
         "else": {"required": ["email"]},
         "additionalProperties": False}},
    {"name": "test_reconnection", "description": "Plain text here (a stdio child cannot close the HTTP stream)",
     "inputSchema": EMPTY},
    {"name": "echo", "description": "Echoes back the input message",
     "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
    {"name": "test_param_header", "description": "Its region argument is mirrored in Mcp-Param-Region (SEP-2243)",
     "inputSchema": {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                     "required": ["region"]}},
] + [
    {"name": name, "description": description, "inputSchema": EMPTY}
    for name, description in (
        ("test_missing_capability", "Asks for sampling (a client without it gets -32021)"),
        ("test_streaming_elicitation", "Asks for a form elicitation"),
        ("test_logging_tool", "Emits log messages"),
        ("test_trigger_tool_change", "Announces a changed tool list"),
        ("test_trigger_prompt_change", "Announces a changed prompt list"),
        ("test_input_required_result_elicitation", "Input required: elicitation"),
        ("test_input_required_result_sampling", "Input required: sampling"),
        ("test_input_required_result_list_roots", "Input required: roots"),
        ("test_input_required_result_request_state", "Input required, with state"),
        ("test_input_required_result_multiple_inputs", "Input required: three at once"),
        ("test_input_required_result_multi_round", "Input required: two rounds"),
        ("test_input_required_result_tampered_state", "Input required, then tampered"),
        ("test_input_required_result_capabilities", "Input required: sampling only"),
    )
]
RESOURCES = [
    {"uri": "test://static-text", "name": "Static Text Resource",
     "description": "A static text resource for testing", "mimeType": "text/plain"},
    {"uri": "test://static-binary", "name": "Static Binary Resource",
     "description": "A static binary resource (image) for testing", "mimeType": "image/png"},
    {"uri": "test://watched-resource", "name": "Watched Resource",
     "description": "A resource that can be subscribed to", "mimeType": "text/plain"},
]
TEMPLATES = [
    {"uriTemplate": "test://template/{id}/data", "name": "Resource Template",
     "description": "A resource template with parameter substitution", "mimeType": "application/json"},
]
PROMPTS = [
    {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
    {"name": "test_prompt_with_arguments", "description": "A prompt with required arguments", "arguments": [
        {"name": "arg1", "description": "First test argument", "required": True},
        {"name": "arg2", "description": "Second test argument", "required": True}]},
    {"name": "test_prompt_with_embedded_resource", "description": "A prompt with an embedded resource",
     "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": True}]},
    {"name": "test_prompt_with_image", "description": "A prompt with image content"},
    {"name": "test_input_required_result_prompt", "description": "A prompt that asks for context"},
]


def _form(message, field, kind="string"):
    return {"message": message, "requestedSchema": {
        "type": "object", "properties": {field: {"type": kind}}, "required": [field]}}


def _sampling(prompt, max_tokens):
    return {"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": max_tokens}


def _answers(asks):
    """Ask several questions at once (one thread each); the answers by id."""
    out = {}

    def one(rid, method, params):
        out[rid] = ask_client(method, params, rid=rid)

    threads = [threading.Thread(target=one, args=a, daemon=True) for a in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def input_required_tool(name):
    """The 2026-07-28 input-required fixtures; None when ``name`` is not one."""
    if name == "test_input_required_result_elicitation":
        r = ask_client("elicitation/create", _form("What is your name?", "name"), rid="user_name")
        return text(f"Hello, {(r.get('content') or {}).get('name')}!")
    if name == "test_input_required_result_sampling":
        r = ask_client("sampling/createMessage", _sampling("What is the capital of France?", 100),
                       rid="capital_question")
        return text(f"Sampled: {(r.get('content') or {}).get('text')}")
    if name == "test_input_required_result_list_roots":
        r = ask_client("roots/list", {}, rid="client_roots")
        return text("Roots: " + ", ".join(str(x.get("uri")) for x in r.get("roots") or []))
    if name in ("test_input_required_result_request_state",
                "test_input_required_result_tampered_state"):
        r = ask_client("elicitation/create", _form("Please confirm", "ok", "boolean"), rid="confirm")
        # Resumed only through a requestState the broker validated.
        return text(f"state-ok: action={r.get('action')}")
    if name == "test_input_required_result_multiple_inputs":
        got = _answers([
            ("user_name", "elicitation/create", _form("What is your name?", "name")),
            ("greeting", "sampling/createMessage", _sampling("Generate a greeting", 50)),
            ("client_roots", "roots/list", {}),
        ])
        return text("Got: " + ", ".join(sorted(got)))
    if name == "test_input_required_result_multi_round":
        first = ask_client("elicitation/create", _form("Step 1: What is your name?", "name"), rid="step1")
        second = ask_client("elicitation/create", _form("Step 2: What is your favorite color?", "color"),
                            rid="step2")
        return text(f"Done: {(first.get('content') or {}).get('name')}, "
                    f"{(second.get('content') or {}).get('color')}")
    if name == "test_input_required_result_capabilities":
        r = ask_client("sampling/createMessage", _sampling("What is the capital of France?", 100),
                       rid="capital_question")
        return text(f"Sampled: {(r.get('content') or {}).get('text')}")
    return None


# --------------------------------------------------------------------- tools
def call_tool(name, args, meta):
    if name == "test_simple_text":
        return text("This is a simple text response for testing.")
    if name == "test_image_content":
        return {"content": [{"type": "image", "data": PNG_1PX, "mimeType": "image/png"}]}
    if name == "test_audio_content":
        return {"content": [{"type": "audio", "data": WAV_MIN, "mimeType": "audio/wav"}]}
    if name == "test_embedded_resource":
        return {"content": [{"type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain",
            "text": "This is an embedded resource content."}}]}
    if name == "test_multiple_content_types":
        return {"content": [
            {"type": "text", "text": "Multiple content types test:"},
            {"type": "image", "data": PNG_1PX, "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                                              "text": json.dumps({"test": "data", "value": 123})}}]}
    if name == "test_tool_with_logging":
        log("info", "Tool execution started")
        time.sleep(0.05)
        log("info", "Tool processing data")
        time.sleep(0.05)
        log("info", "Tool execution completed")
        return text("Tool with logging executed successfully")
    if name == "test_tool_with_progress":
        token = (meta or {}).get("progressToken")
        for i, p in enumerate((0, 50, 100)):
            if token is not None:
                notify("notifications/progress", {"progressToken": token, "progress": p, "total": 100,
                                                  "message": f"Completed step {p} of 100"})
            if i < 2:
                time.sleep(0.05)
        return text(str(token))
    if name == "test_error_handling":
        return {"content": [{"type": "text", "text": "This tool intentionally returns an error for testing"}],
                "isError": True}
    if name == "test_sampling":
        r = ask_client("sampling/createMessage", {"messages": [{"role": "user", "content": {
            "type": "text", "text": args.get("prompt", "")}}], "maxTokens": 100})
        return text(f"LLM response: {(r.get('content') or {}).get('text', 'No response')}")
    if name == "test_elicitation":
        r = ask_client("elicitation/create", {"mode": "form", "message": args.get("message", ""), "requestedSchema": {
            "type": "object",
            "properties": {"username": {"type": "string", "description": "User's response"},
                           "email": {"type": "string", "description": "User's email address"}},
            "required": ["username", "email"]}})
        return text(f"User response: action={r.get('action')}, content={json.dumps(r.get('content') or {})}")
    if name == "test_elicitation_sep1034_defaults":
        r = ask_client("elicitation/create", {"mode": "form", "message": "Please review the defaults",
                                              "requestedSchema": {"type": "object", "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {"type": "string", "description": "User status",
                       "enum": ["active", "inactive", "pending"], "default": "active"},
            "verified": {"type": "boolean", "description": "Verification status", "default": True}},
            "required": []}})
        return text(f"Elicitation completed: action={r.get('action')}, content={json.dumps(r.get('content') or {})}")
    if name == "test_elicitation_sep1330_enums":
        r = ask_client("elicitation/create", {"mode": "form", "message": "Pick some options",
                                              "requestedSchema": {"type": "object", "properties": {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {"type": "string", "oneOf": [
                {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"}]},
            "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                           "enumNames": ["Option One", "Option Two", "Option Three"]},
            "untitledMulti": {"type": "array", "items": {"type": "string",
                                                         "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {"type": "array", "items": {"anyOf": [
                {"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"},
                {"const": "value3", "title": "Third Choice"}]}}},
            "required": []}})
        return text(f"Elicitation completed: action={r.get('action')}, content={json.dumps(r.get('content') or {})}")
    if name == "json_schema_2020_12_tool":
        return text(f"Received: {json.dumps(args)}")
    if name == "test_reconnection":
        return text("Reconnection test completed successfully.")
    if name == "echo":
        return text(str(args.get("message", "")))
    if name == "test_param_header":
        return text(f"Region: {args.get('region')}")
    if name == "test_missing_capability":
        r = ask_client("sampling/createMessage", _sampling("Say hi", 10))
        return text(f"Sampled: {(r.get('content') or {}).get('text')}")
    if name == "test_streaming_elicitation":
        r = ask_client("elicitation/create", _form("Your name?", "name"))
        return text(f"Elicited: action={r.get('action')}")
    if name == "test_logging_tool":
        for step in ("started", "working", "done"):
            log("info", f"test_logging_tool {step}")
        return text("Logged three messages")
    if name == "test_trigger_tool_change":
        notify("notifications/tools/list_changed", {})
        return text("Tool list change announced")
    if name == "test_trigger_prompt_change":
        notify("notifications/prompts/list_changed", {})
        return text("Prompt list change announced")
    answer = input_required_tool(name)
    if answer is not None:
        return answer
    raise KeyError(name)


def tool_worker(mid, params):
    try:
        res = call_tool(params.get("name"), params.get("arguments") or {}, params.get("_meta"))
    except KeyError:
        error(mid, -32602, f"Unknown tool: {params.get('name')}")
        return
    except Exception as exc:  # noqa: BLE001 - surface as a tool error
        res = {"content": [{"type": "text", "text": f"{type(exc).__name__}: {exc}"}], "isError": True}
    result(mid, res)


def prompt_worker(mid):
    try:
        r = ask_client("elicitation/create", _form("What context should the prompt use?", "context"),
                       rid="user_context")
    except Exception as exc:  # noqa: BLE001 - surface as an error
        error(mid, -32603, f"{type(exc).__name__}: {exc}")
        return
    context = (r.get("content") or {}).get("context")
    result(mid, {"messages": [{"role": "user", "content": {
        "type": "text", "text": f"Use this context: {context}"}}]})


# ------------------------------------------------------------ other methods
def read_resource(uri):
    if uri == "test://static-text":
        return {"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."}
    if uri == "test://static-binary":
        return {"uri": uri, "mimeType": "image/png", "blob": PNG_1PX}
    if uri == "test://watched-resource":
        return {"uri": uri, "mimeType": "text/plain", "text": "Watched resource content"}
    if uri.startswith("test://template/") and uri.endswith("/data"):
        rid = uri[len("test://template/"):-len("/data")]
        return {"uri": uri, "mimeType": "application/json",
                "text": json.dumps({"id": rid, "templateTest": True, "data": f"Data for ID: {rid}"})}
    return None


def get_prompt(name, args):
    if name == "test_simple_prompt":
        return {"messages": [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]}
    if name == "test_prompt_with_arguments":
        return {"messages": [{"role": "user", "content": {"type": "text", "text":
                f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"}}]}
    if name == "test_prompt_with_embedded_resource":
        return {"messages": [
            {"role": "user", "content": {"type": "resource", "resource": {
                "uri": args.get("resourceUri", "test://example-resource"), "mimeType": "text/plain",
                "text": "Embedded resource content for testing."}}},
            {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}}]}
    if name == "test_prompt_with_image":
        return {"messages": [
            {"role": "user", "content": {"type": "image", "data": PNG_1PX, "mimeType": "image/png"}},
            {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}}]}
    return None


def handle_request(msg):
    mid, method, params = msg["id"], msg["method"], msg.get("params") or {}
    if method == "initialize":
        v = params.get("protocolVersion")
        result(mid, {"protocolVersion": v if v in SUPPORTED_VERSIONS else LATEST,
                     "capabilities": {"tools": {"listChanged": True},
                                      "resources": {"subscribe": True, "listChanged": True},
                                      "prompts": {"listChanged": True}, "logging": {}, "completions": {}},
                     "serverInfo": {"name": "mcp-conformance-stdio-child", "version": "1.0.0"}})
    elif method == "ping":
        result(mid, {})
    elif method == "tools/list":
        result(mid, {"tools": TOOLS})
    elif method == "tools/call":
        threading.Thread(target=tool_worker, args=(mid, params), daemon=True).start()
    elif method == "resources/list":
        result(mid, {"resources": RESOURCES})
    elif method == "resources/templates/list":
        result(mid, {"resourceTemplates": TEMPLATES})
    elif method == "resources/read":
        c = read_resource(params.get("uri", ""))
        if c is None:
            send({"jsonrpc": "2.0", "id": mid, "error": {
                "code": -32002, "message": f"Resource not found: {params.get('uri')}",
                "data": {"uri": params.get("uri")}}})
        else:
            result(mid, {"contents": [c]})
    elif method == "resources/subscribe":
        _state["subscriptions"].add(params.get("uri"))
        result(mid, {})
    elif method == "resources/unsubscribe":
        _state["subscriptions"].discard(params.get("uri"))
        result(mid, {})
    elif method == "prompts/list":
        result(mid, {"prompts": PROMPTS})
    elif method == "prompts/get" and params.get("name") == "test_input_required_result_prompt":
        threading.Thread(target=prompt_worker, args=(mid,), daemon=True).start()
    elif method == "prompts/get":
        p = get_prompt(params.get("name"), params.get("arguments") or {})
        if p is None:
            error(mid, -32602, f"Prompt not found: {params.get('name')}")
        else:
            result(mid, p)
    elif method == "logging/setLevel":
        lvl = params.get("level")
        if lvl not in LEVELS:
            error(mid, -32602, f"Invalid level: {lvl}")
        else:
            _state["log_level"] = lvl
            result(mid, {})
    elif method == "completion/complete":
        val = ((params.get("argument") or {}).get("value") or "")
        values = [v for v in ("paris", "park", "party", "test-value") if v.startswith(val)] or [val + "-suggestion"]
        result(mid, {"completion": {"values": values, "total": len(values), "hasMore": False}})
    else:
        error(mid, -32601, f"Method not found: {method}")


def updates_loop():
    while True:
        time.sleep(3)
        if "test://watched-resource" in _state["subscriptions"]:
            notify("notifications/resources/updated", {"uri": "test://watched-resource"})


def main():
    var = os.environ.get("ECHO_REQUIRE_TOKEN")
    if var and not os.environ.get(var):
        sys.stderr.write(f"conformance_server: required token variable {var} is empty or unset\n")
        sys.exit(3)
    threading.Thread(target=updates_loop, daemon=True).start()
    for line in sys.stdin.buffer:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            error(None, -32700, "Parse error")
            continue
        for m in (msg if isinstance(msg, list) else [msg]):
            if not isinstance(m, dict):
                continue
            if "method" in m and "id" in m:
                handle_request(m)
            elif "method" in m:
                pass  # notifications (initialized, cancelled, ...) need no answer
            elif "id" in m:  # a client's answer to one of our requests
                with _pending_lock:
                    slot = _pending.pop(m["id"], None)
                if slot:
                    slot[1] = m
                    slot[0].set()


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
