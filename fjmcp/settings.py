# -*- test-case-name: tests.test_settings -*-
"""
The one place the configuration is cut into the components' settings.

`fjmcp.config.Config` is what an operator writes (TOML < env < flags, every
key declared once). A component never sees it: each takes a small frozen
value of its own (`ChildSettings`, `MaintenanceSettings`, `SiteSettings`...),
declared in its package, holding only what it reads, in its own words
(``idle_timeout``, not ``session_idle_timeout``). This module builds them,
so renaming or splitting a configuration key changes one function here and
no component.

It lives apart from `fjmcp.config`, which every command imports to parse
its options, so that parsing never loads the components; only the
composition root (`fjmcp.wiring`) and the admin commands working on the
store import it.
"""

from __future__ import annotations

from attrs import field, frozen

from fjmcp.admin.settings import AdminSettings
from fjmcp.audit.settings import AuditSettings
from fjmcp.bridge.router import BridgeSettings
from fjmcp.bridge.stateless import StatelessSettings
from fjmcp.config import Config, ConfigError
from fjmcp.interfaces import UpstreamGrants
from fjmcp.maintenance.settings import MaintenanceSettings
from fjmcp.metrics.settings import MetricsSettings
from fjmcp.oauth.document_cache import CachePolicy
from fjmcp.oauth.document_fetch import FetchLimits
from fjmcp.oauth.document_settings import ClientDocumentSettings
from fjmcp.oauth.known_clients import KnownClients
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.policy.rules import ClientNames, PolicyConfig
from fjmcp.sessions.registry import SessionSettings
from fjmcp.sessions.spawn_gate import default_spawn_limit
from fjmcp.supervisor.environment import ChildSettings
from fjmcp.supervisor.isolation import IsolationSettings
from fjmcp.upstream.forgejo import ForgejoSettings
from fjmcp.web.mcp_resource import McpSettings
from fjmcp.web.ratelimit import RateLimitSettings, parse_networks
from fjmcp.web.site import SiteSettings

__all__ = [
    "BrokerSettings",
    "admin_settings",
    "audit_settings",
    "broker_settings",
    "client_document_settings",
    "child_settings",
    "forgejo_settings",
    "isolation_settings",
    "maintenance_settings",
    "mcp_settings",
    "metrics_settings",
    "oauth_settings",
    "rate_limit_settings",
    "session_settings",
    "site_settings",
]


def admin_settings(config: Config) -> AdminSettings:
    """The admin socket's place and the tokens ``issue-token`` mints."""
    return AdminSettings(
        socket_path=config.admin_socket_path,
        token_audience=config.mcp_url,
        token_ttl=config.access_token_ttl,
    )


def audit_settings(config: Config) -> AuditSettings:
    """Where audit lines go and when the file rotates."""
    return AuditSettings(
        path=config.audit_log, rotate_bytes=config.audit_log_rotate_bytes
    )


def child_settings(config: Config) -> ChildSettings:
    """What every child is started with."""
    return ChildSettings(
        argv=(*config.child_wrapper, *config.child_command),
        forgejo_url=config.forgejo_url,
        env_passthrough=config.child_env_passthrough,
        token_env=config.child_token_env,
        url_env=config.child_url_env,
        user=config.child_user,
        group=config.child_group,
        max_line_bytes=config.max_line_bytes,
        stop_grace=config.child_stop_grace,
    )


def isolation_settings(config: Config) -> IsolationSettings:
    """How children are confined, and the broker paths they must not see."""
    hidden = (
        str(config.state_dir),
        str(config.token_keys_path),
        str(config.admin_socket_path),
        str(config.child_runtime_path),
        "/etc/fjmcp",
    )
    return IsolationSettings(
        sandbox=config.child_sandbox,
        binds=config.child_sandbox_binds,
        uid_range=config.child_uid_range,
        token_via=config.child_token_via,
        token_file_env=config.child_token_file_env,
        token_fd_env=config.child_token_fd_env,
        limits=config.child_limits,
        runtime_dir=config.child_runtime_path,
        hidden=hidden,
    )


def upstream_grants(config: Config) -> UpstreamGrants:
    """
    The grants at Forgejo the broker keeps per user: read-only consents get
    their own only with scopes and an OAuth2 application of their own
    (`fjmcp.config` refuses scopes without the application).
    """
    separate = bool(config.forgejo_scopes_read_only and config.forgejo_ro_client_id)
    return UpstreamGrants(
        full=config.forgejo_scopes,
        read_only=config.forgejo_scopes_read_only if separate else None,
    )


def forgejo_settings(config: Config) -> ForgejoSettings:
    """Which Forgejo the broker calls, as which OAuth application(s)."""
    separate = upstream_grants(config).separate
    return ForgejoSettings(
        base_url=config.forgejo_url,
        client_id=config.forgejo_client_id,
        client_secret=config.forgejo_client_secret,
        timeout=config.forgejo_timeout,
        read_only_client_id=config.forgejo_ro_client_id if separate else "",
        read_only_client_secret=(config.forgejo_ro_client_secret if separate else ""),
    )


def maintenance_settings(config: Config) -> MaintenanceSettings:
    """The idle reaper's and the token refresher's intervals, the retention."""
    return MaintenanceSettings(
        reaper_interval=config.reaper_interval,
        idle_timeout=config.session_idle_timeout,
        refresh_interval=config.refresh_interval,
        refresh_margin=config.refresh_margin,
        user_check_interval=config.user_check_interval,
        node_id=config.node_name,
        client_retention=config.client_retention,
    )


def mcp_settings(config: Config) -> McpSettings:
    """Who may call ``/mcp`` from a browser, and how its streams behave."""
    return McpSettings(
        public_url=config.public_url,
        public_is_loopback=config.public_is_loopback,
        allowed_origins=config.allowed_origins,
        streams=BridgeSettings(
            keepalive_interval=config.sse_keepalive_interval,
            buffer_cap=config.stream_buffer_bytes,
            write_deadline=config.stream_write_deadline,
            resume_window=config.stream_resume_window,
            replay_bytes=config.stream_buffer_bytes,
            queue_bytes=config.stream_buffer_bytes,
        ),
        stateless=StatelessSettings(
            max_in_flight=config.identity_child_max_in_flight,
            ttl_ms=config.stateless_cache_ttl_ms,
            held_call_timeout=config.held_call_timeout,
            max_held_calls=config.max_held_calls_per_identity,
            node=config.node_name,
        ),
        node_id=config.node_name,
    )


def metrics_settings(config: Config) -> MetricsSettings:
    """Where ``GET /metrics`` listens, if anywhere."""
    return MetricsSettings(listen=config.metrics_listen)


def known_client_names(config: Config) -> ClientNames:
    """
    The known-client names policy rules match (the records' ``client_name``).
    Raises `ConfigError` when a known-client record is not a valid document.
    """
    try:
        return KnownClients.build(config.known_clients).client_names()
    except ValueError as e:
        raise ConfigError([str(e)]) from None


def oauth_settings(config: Config) -> OAuthSettings:
    """The authorization server's names, Forgejo scopes and token lifetimes."""
    return OAuthSettings(
        public_url=config.public_url,
        forgejo_url=config.forgejo_url,
        forgejo_scopes=tuple(config.forgejo_scopes),
        access_token_ttl=config.access_token_ttl,
        refresh_token_ttl=config.refresh_token_ttl,
        auth_code_ttl=config.auth_code_ttl,
        display_name=config.display_name,
        revocation_propagation=config.revocation_propagation,
        refresh_reuse_grace=config.refresh_reuse_grace,
        forgejo_scopes_read_only=upstream_grants(config).read_only or (),
        policy=config.policy,
        client_names=known_client_names(config),
    )


def rate_limit_settings(config: Config) -> RateLimitSettings:
    """The OAuth endpoints' limits and the proxies trusted to name clients."""
    return RateLimitSettings(
        authorize_per_ip=config.rate_limit_authorize,
        token_per_client=config.rate_limit_token,
        token_failures_per_ip=config.rate_limit_token_failures,
        token_global=config.rate_limit_token_global,
        register_per_ip=config.rate_limit_register,
        trusted_proxies=parse_networks(config.trusted_proxies),
    )


def session_settings(config: Config) -> SessionSettings:
    """The caps on children and the drain of a replaced one."""
    return SessionSettings(
        max_children=config.max_children,
        max_children_per_user=config.max_children_per_user,
        drain_timeout=config.child_drain_timeout,
        max_concurrent_spawns=(
            config.max_concurrent_spawns
            if config.max_concurrent_spawns > 0
            else default_spawn_limit()
        ),
    )


def site_settings(config: Config) -> SiteSettings:
    """The limits every HTTP request meets."""
    return SiteSettings(
        max_request_bytes=config.max_request_bytes,
        request_timeout=config.request_timeout,
    )


@frozen(kw_only=True)
class BrokerSettings:
    """Every component's settings, for the composition root."""

    admin: AdminSettings
    audit: AuditSettings
    child: ChildSettings
    isolation: IsolationSettings
    forgejo: ForgejoSettings
    maintenance: MaintenanceSettings
    mcp: McpSettings
    metrics: MetricsSettings
    oauth: OAuthSettings
    rate_limits: RateLimitSettings
    sessions: SessionSettings
    site: SiteSettings
    client_documents: ClientDocumentSettings = field(factory=ClientDocumentSettings)
    policy: PolicyConfig = PolicyConfig()
    client_names: ClientNames = ClientNames()
    """The known-client names the policy's rules name clients by."""


def client_document_settings(config: Config) -> ClientDocumentSettings:
    """
    Known-client records, and how client documents are fetched and cached.
    Raises `ConfigError` when a known-client record is not a valid document.
    """
    try:
        known = KnownClients.build(config.known_clients)
    except ValueError as e:
        raise ConfigError([str(e)]) from None
    return ClientDocumentSettings(
        known_clients=known,
        limits=FetchLimits(
            timeout=config.client_document_timeout,
            max_bytes=config.client_document_max_bytes,
        ),
        cache=CachePolicy(
            floor=config.client_document_cache_min,
            ceiling=config.client_document_cache_max,
            max_entries=config.client_document_cache_entries,
            negative_ttl=config.client_document_negative_ttl,
        ),
    )


def broker_settings(config: Config) -> BrokerSettings:
    """Cut ``config`` into every component's settings."""
    return BrokerSettings(
        admin=admin_settings(config),
        audit=audit_settings(config),
        child=child_settings(config),
        isolation=isolation_settings(config),
        forgejo=forgejo_settings(config),
        maintenance=maintenance_settings(config),
        mcp=mcp_settings(config),
        metrics=metrics_settings(config),
        oauth=oauth_settings(config),
        rate_limits=rate_limit_settings(config),
        sessions=session_settings(config),
        site=site_settings(config),
        client_documents=client_document_settings(config),
        policy=config.policy,
        client_names=known_client_names(config),
    )
