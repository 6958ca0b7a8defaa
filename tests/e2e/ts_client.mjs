// An MCP client built only from the official TypeScript SDK
// (@modelcontextprotocol/sdk, pinned in package-lock.json), run against a
// live fjmcp by tests/e2e/test_sdk_clients.py as a second, independent client.
//
// The SDK does discovery from the 401, dynamic client registration, PKCE,
// the code exchange and the refresh on a 401; this script supplies what an
// app supplies: token storage and the "browser" (redirectToAuthorization),
// which follows redirects and submits the broker's consent form and the
// stand-in Forgejo's login form as a browser would, with a cookie jar.
//
// Usage: E2E_USER=alice E2E_PASSWORD=... node ts_client.mjs --mcp-url URL
// Prints one JSON object (never a token); exit 0 when the flow ran.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const REDIRECT_URI = 'http://127.0.0.1:33419/callback';
const MAX_BROWSER_STEPS = 20;

function argValue(name) {
  const at = process.argv.indexOf(name);
  if (at < 0 || at + 1 >= process.argv.length) throw new Error(`missing ${name}`);
  return process.argv[at + 1];
}

// --- the "browser" -------------------------------------------------------------

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

function decode(text) {
  return text
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&#x27;/g, "'")
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function forms(html) {
  const found = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const a = attrs(m[1]);
    const form = { action: a.action ?? '', method: (a.method ?? 'get').toLowerCase(), fields: [], buttons: [] };
    for (const t of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const i = attrs(t[1]);
      const type = (i.type ?? 'text').toLowerCase();
      if (type === 'submit') form.buttons.push({ name: i.name ?? '', value: i.value ?? '', text: '' });
      else if ((type === 'radio' || type === 'checkbox') && !('checked' in i)) continue; // a browser sends the checked ones only
      else if (i.name) form.fields.push({ type, name: i.name, value: i.value ?? '' });
    }
    for (const b of m[2].matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)) {
      const i = attrs(b[1]);
      if ((i.type ?? 'submit').toLowerCase() !== 'submit') continue;
      form.buttons.push({ name: i.name ?? '', value: i.value ?? '', text: b[2].replace(/<[^>]*>/g, '').trim() });
    }
    found.push(form);
  }
  return found;
}

function chooseSubmission(html, user, password) {
  const all = forms(html);
  for (const form of all) {
    if (form.fields.some((f) => f.type === 'password')) {
      const data = new URLSearchParams();
      for (const f of form.fields) {
        if (f.type === 'password') data.append(f.name, password);
        else if (f.type === 'text' || f.type === 'email') data.append(f.name, user);
        else data.append(f.name, f.value);
      }
      return { form, data, page: 'login' };
    }
  }
  for (const form of all) {
    for (const b of form.buttons) {
      const label = `${b.name} ${b.value} ${b.text}`.toLowerCase();
      if (label.includes('allow') || label.includes('approve')) {
        const data = new URLSearchParams();
        for (const f of form.fields) data.append(f.name, f.value);
        if (b.name) data.append(b.name, b.value);
        return { form, data, page: 'consent' };
      }
    }
  }
  throw new Error(`no login or consent form on the page: ${html.slice(0, 300)}`);
}

class Browser {
  constructor(user, password) {
    this.user = user;
    this.password = password;
    this.jar = new Map(); // hostname -> Map(name -> value); cookies ignore ports
    this.pages = [];
  }

  cookieHeader(url) {
    const jar = this.jar.get(url.hostname);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  keepCookies(url, response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      if (!this.jar.has(url.hostname)) this.jar.set(url.hostname, new Map());
      this.jar.get(url.hostname).set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  }

  // Walk from the authorization URL to the redirect URI; returns its query.
  async authorize(start) {
    let url = new URL(start);
    let method = 'GET';
    let body;
    for (let step = 0; step < MAX_BROWSER_STEPS; step++) {
      if (url.href.startsWith(REDIRECT_URI)) {
        const error = url.searchParams.get('error');
        if (error) throw new Error(`authorization refused: ${error}`);
        return url.searchParams;
      }
      const headers = {};
      const cookie = this.cookieHeader(url);
      if (cookie) headers.cookie = cookie;
      if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
      const response = await fetch(url, { method, headers, body, redirect: 'manual' });
      this.keepCookies(url, response);
      if (response.status >= 300 && response.status < 400) {
        url = new URL(response.headers.get('location'), url);
        method = 'GET';
        body = undefined;
        continue;
      }
      const html = await response.text();
      if (response.status !== 200) throw new Error(`${method} ${url.pathname} answered ${response.status}`);
      const { form, data, page } = chooseSubmission(html, this.user, this.password);
      this.pages.push(`${page}@${url.host}`);
      const target = new URL(form.action || url.href, url);
      if (form.method === 'post') {
        url = target;
        method = 'POST';
        body = data.toString();
      } else {
        for (const [k, v] of data) target.searchParams.append(k, v);
        url = target;
        method = 'GET';
        body = undefined;
      }
    }
    throw new Error('too many steps without reaching the redirect URI');
  }
}

// --- the SDK's OAuthClientProvider, in memory -----------------------------------

class MemoryProvider {
  constructor(browser) {
    this.browser = browser;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.tokenHistory = [];
    this.pendingCode = undefined;
    this.returnedIss = undefined;
    this._state = undefined;
  }
  get redirectUrl() { return REDIRECT_URI; }
  get clientMetadata() {
    return {
      client_name: 'fjmcp e2e (official TypeScript SDK)',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this._state = crypto.randomUUID();
    return this._state;
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; this.tokenHistory.push(tokens); }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  async redirectToAuthorization(url) {
    const query = await this.browser.authorize(url.href);
    if (query.get('state') !== this._state) throw new Error('state mismatch on the redirect');
    this.pendingCode = query.get('code');
    this.returnedIss = query.get('iss');
  }
}

// --- the run --------------------------------------------------------------------

async function run() {
  const mcpUrl = new URL(argValue('--mcp-url'));
  const browser = new Browser(process.env.E2E_USER, process.env.E2E_PASSWORD);
  const provider = new MemoryProvider(browser);
  const exchanges = [];
  const recordingFetch = async (input, init) => {
    const response = await fetch(input, init);
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    exchanges.push({
      method: (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase(),
      url: `${url.origin}${url.pathname}`,
      status: response.status,
      bearer: (headers.get('authorization') ?? '').toLowerCase().startsWith('bearer '),
    });
    return response;
  };
  const newTransport = () =>
    new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  const clientInfo = { name: 'fjmcp-e2e-ts', version: '1.0.0' };

  // First connect: 401 -> discovery, DCR, the browser; the SDK then wants
  // the app to hand it the code and connect again.
  let transport = newTransport();
  let client = new Client(clientInfo);
  try {
    await client.connect(transport);
    throw new Error('connected without authorization');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  if (!provider.pendingCode) throw new Error('the authorization did not come back');
  await transport.finishAuth(provider.pendingCode);
  await client.close();

  transport = newTransport();
  client = new Client(clientInfo);
  await client.connect(transport);
  const out = {
    iss: provider.returnedIss,
    protocol_version: transport.protocolVersion ?? null,
    server_name: client.getServerVersion()?.name ?? null,
    session: Boolean(transport.sessionId),
  };
  const tools = await client.listTools();
  out.tools = tools.tools.map((t) => t.name).sort();
  const who = await client.callTool({ name: 'whoami', arguments: {} });
  out.whoami = who.content.filter((c) => c.type === 'text').map((c) => c.text);
  out.whoami_is_error = Boolean(who.isError);

  // The access token dies (as one does after its lifetime): the next call
  // gets 401 and the SDK refreshes with its refresh token, then retries.
  const before = provider._tokens.access_token;
  provider._tokens = { ...provider._tokens, access_token: 'expired-' + before.slice(0, 4) };
  const again = await client.callTool({ name: 'whoami', arguments: {} });
  out.refreshed = provider._tokens.access_token !== before && !provider._tokens.access_token.startsWith('expired-');
  out.whoami_after_refresh = again.content.filter((c) => c.type === 'text').map((c) => c.text);
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'över the bridge' } });
  out.echo = echo.content.filter((c) => c.type === 'text').map((c) => c.text);
  await client.ping();

  await transport.terminateSession(); // DELETE /mcp
  out.session_after_end = transport.sessionId ?? null;
  await client.close();
  out.token_sets = provider.tokenHistory.length;
  out.refresh_tokens_rotated = new Set(provider.tokenHistory.map((t) => t.refresh_token)).size > 1;
  out.client_registered = Boolean(provider._client?.client_id);
  out.pages = browser.pages;
  out.exchanges = exchanges;
  return out;
}

run().then(
  (out) => {
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
  },
  (error) => {
    process.stdout.write(JSON.stringify({ error: String(error), stack: error?.stack ?? null }) + '\n');
    process.exit(1);
  },
);
