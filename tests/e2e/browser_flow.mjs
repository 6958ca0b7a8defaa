// The broker's consent page and the stand-in Forgejo's login page in a real
// browser: Debian's chromium driven by playwright-core (never a browser
// download), run by tests/e2e/test_browser.py.
//
// It registers a client with the broker (DCR), then, in a fresh profile:
//   allow: opens the authorization URL, clicks Allow on the consent page,
//          signs in on the stand-in's login page, and reaches the client's
//          redirect URI with a code, which it exchanges (PKCE) for a token
//          that /mcp accepts for initialize;
//   deny:  clicks Deny and reaches the redirect URI with access_denied;
//   read-only: asked again, the stored mode preselected, chooses Read-only;
//          the token carries it, /mcp enforces it, and the page asked once
//          more preselects Read-only;
//   frame: embeds both pages in an iframe of another origin, which the
//          browser must refuse to render.
// It saves a screenshot of each page and prints one JSON object (no tokens).
//
// Usage: E2E_USER=.. E2E_PASSWORD=.. node browser_flow.mjs --public-url URL
//          --forgejo-url URL --screenshots DIR [--chromium /usr/bin/chromium]

import { chromium } from 'playwright-core';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REDIRECT_URI = 'http://127.0.0.1:33420/callback';
const STEP_TIMEOUT = 20_000;
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

function arg(name, fallback) {
  const at = process.argv.indexOf(name);
  if (at >= 0 && at + 1 < process.argv.length) return process.argv[at + 1];
  if (fallback !== undefined) return fallback;
  throw new Error(`missing ${name}`);
}

const publicUrl = arg('--public-url');
const forgejoUrl = arg('--forgejo-url');
const shots = arg('--screenshots');
const executablePath = arg('--chromium', '/usr/bin/chromium');
const user = process.env.E2E_USER;
const password = process.env.E2E_PASSWORD;

const b64url = (buf) => buf.toString('base64url');

async function register() {
  const response = await fetch(`${publicUrl}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Browser E2E Client',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  if (response.status !== 201) throw new Error(`registration answered ${response.status}: ${await response.text()}`);
  return (await response.json()).client_id;
}

function authorization(clientId) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));
  const url = new URL(`${publicUrl}/oauth/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    scope: 'mcp',
    resource: `${publicUrl}/mcp`,
  }).toString();
  return { url: url.href, verifier, state };
}

function framingHeaders(response) {
  const h = response.headers();
  return {
    x_frame_options: h['x-frame-options'] ?? null,
    frame_ancestors_none: /frame-ancestors\s+'none'/.test(h['content-security-policy'] ?? ''),
  };
}

// Wait for the page to reach ``prefix``; on a timeout, say where it is instead.
async function reach(page, prefix) {
  try {
    await page.waitForURL(`${prefix}**`, { timeout: STEP_TIMEOUT });
  } catch (e) {
    let text = '';
    try { text = (await page.locator('body').innerText()).slice(0, 800); } catch {}
    const where = new URL(page.url());
    throw new Error(`did not reach ${prefix}; at ${where.origin}${where.pathname}: ${text}`);
  }
}

// The consent mode the page offers checked (null: none).
async function preselected(page) {
  const checked = page.locator('input[name=mode]:checked');
  return (await checked.count()) === 1 ? await checked.getAttribute('value') : null;
}

// Land on the redirect URI without a server there: the browser's request is
// answered here, and its URL is what a client app would read.
async function catchRedirect(page) {
  await page.route(`${REDIRECT_URI}**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<title>back at the client</title>' }),
  );
}

async function allowFlow(context, clientId, out) {
  const page = await context.newPage();
  await catchRedirect(page);
  const auth = authorization(clientId);
  const consent = await page.goto(auth.url);
  out.consent_status = consent.status();
  out.consent_headers = framingHeaders(consent);
  out.consent_title = await page.title();
  out.consent_text = (await page.locator('body').innerText()).slice(0, 2000);
  out.new_preselected = await preselected(page);
  await page.screenshot({ path: join(shots, 'consent.png'), fullPage: true });

  const loginResponse = page.waitForResponse((r) => r.url().startsWith(forgejoUrl) && r.request().method() === 'GET');
  await page.getByRole('button', { name: /allow|approve/i }).click();
  const login = await loginResponse;
  await reach(page, `${forgejoUrl}/`);
  await page.locator('input[type=password]').waitFor({ timeout: STEP_TIMEOUT });
  out.login_headers = framingHeaders(login);
  out.login_title = await page.title();
  out.login_url = page.url();
  await page.screenshot({ path: join(shots, 'standin-login.png'), fullPage: true });

  await page.locator('input[type=text]').first().fill(user);
  await page.locator('input[type=password]').fill(password);
  await page.getByRole('button', { name: /sign in/i }).click();
  await reach(page, REDIRECT_URI);
  const back = new URL(page.url());
  out.allow_state_ok = back.searchParams.get('state') === auth.state;
  out.allow_iss = back.searchParams.get('iss');
  const code = back.searchParams.get('code');
  out.allow_code = Boolean(code);
  await page.close();

  const token = await fetch(`${publicUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      client_id: clientId,
      code_verifier: auth.verifier,
      resource: `${publicUrl}/mcp`,
    }),
  });
  out.token_status = token.status;
  const tokens = await token.json();
  out.token_type = tokens.token_type ?? null;
  out.refresh_token_issued = Boolean(tokens.refresh_token);

  const init = await fetch(`${publicUrl}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${tokens.access_token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'browser-e2e', version: '1' } },
    }),
  });
  out.initialize_status = init.status;
  out.initialize_body_has_result = (await init.text()).includes('"result"');
  const session = init.headers.get('mcp-session-id');
  if (session) {
    const end = await fetch(`${publicUrl}/mcp`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${tokens.access_token}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    });
    out.delete_status = end.status;
  }
}

// One JSON-mode MCP request (application/json answers only).
async function mcp(token, session, body) {
  const headers = {
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
    accept: 'application/json',
    'mcp-protocol-version': '2025-06-18',
  };
  if (session) headers['mcp-session-id'] = session;
  const response = await fetch(`${publicUrl}/mcp`, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await response.text();
  return { response, json: text ? JSON.parse(text) : null };
}

// The consent page asked again (prompt=consent), Read-only chosen by a click:
// the token carries the mode and /mcp holds the session to it.
async function readOnlyFlow(context, clientId, out) {
  const page = await context.newPage();
  await catchRedirect(page);
  const auth = authorization(clientId);
  await page.goto(`${auth.url}&prompt=consent`);
  out.ro_before_preselected = await preselected(page);
  await page.getByLabel(/read-only/i).check();
  out.ro_checked = await page.getByLabel(/read-only/i).isChecked();
  const toForgejo = page.waitForRequest((r) => r.url().startsWith(`${forgejoUrl}/login/oauth/authorize`), { timeout: STEP_TIMEOUT });
  await page.getByRole('button', { name: /allow|approve/i }).click();
  await page.waitForURL((u) => u.href.startsWith(REDIRECT_URI) || u.href.startsWith(forgejoUrl), { timeout: STEP_TIMEOUT });
  // Which application at Forgejo the read-only grant is made through, and
  // with which scopes (never a token: the authorize request carries none).
  const asked = new URL((await toForgejo).url());
  out.ro_forgejo_client = asked.searchParams.get('client_id');
  out.ro_forgejo_scope = asked.searchParams.get('scope');
  if (!page.url().startsWith(REDIRECT_URI)) {
    const field = page.locator('input[type=password]');
    await field.waitFor({ timeout: STEP_TIMEOUT });
    await page.locator('input[type=text]').first().fill(user);
    await field.fill(password);
    await page.getByRole('button', { name: /sign in/i }).click();
    await reach(page, REDIRECT_URI);
  }
  const code = new URL(page.url()).searchParams.get('code');
  await page.close();
  const token = await fetch(`${publicUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      client_id: clientId,
      code_verifier: auth.verifier,
      resource: `${publicUrl}/mcp`,
    }),
  });
  const tokens = await token.json();
  out.ro_scope = tokens.scope ?? null;
  const init = await mcp(tokens.access_token, null, {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'browser-e2e', version: '1' } },
  });
  const session = init.response.headers.get('mcp-session-id');
  await mcp(tokens.access_token, session, { jsonrpc: '2.0', method: 'notifications/initialized' });
  const list = await mcp(tokens.access_token, session, { jsonrpc: '2.0', id: 2, method: 'tools/list' });
  out.ro_tools = (list.json?.result?.tools ?? []).map((t) => t.name);
  const echo = await mcp(tokens.access_token, session, {
    jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } },
  });
  out.ro_echo_error = echo.json?.error?.message ?? null;
  const who = await mcp(tokens.access_token, session, {
    jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'whoami', arguments: {} },
  });
  out.ro_whoami_ok = Boolean(who.json?.result);

  // Asked again (a loopback redirect always shows the page): the stored
  // read-only mode is preselected, not the operator's default.
  const again = await context.newPage();
  await again.goto(authorization(clientId).url);
  out.ro_again_preselected = await preselected(again);
  await again.close();
}

async function denyFlow(context, clientId, out) {
  const page = await context.newPage();
  await catchRedirect(page);
  const auth = authorization(clientId);
  await page.goto(auth.url);
  await page.getByRole('button', { name: /deny|cancel|reject/i }).click();
  await reach(page, REDIRECT_URI);
  const back = new URL(page.url());
  out.deny_error = back.searchParams.get('error');
  out.deny_state_ok = back.searchParams.get('state') === auth.state;
  out.deny_iss = back.searchParams.get('iss');
  out.deny_code = back.searchParams.has('code');
  await page.close();
}

// Embed ``target`` on another origin; report whether the browser rendered it.
async function framed(context, target) {
  const page = await context.newPage();
  await page.route('http://embedder.test/**', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'text/html',
      body: `<!DOCTYPE html><title>embedder</title><iframe id="f" src="${target.replace(/"/g, '&quot;')}"
        onload="document.title='frame loaded'" width="800" height="600"></iframe>`,
    }),
  );
  await page.goto('http://embedder.test/page.html');
  await page.waitForFunction(() => document.title === 'frame loaded', null, { timeout: STEP_TIMEOUT });
  const frame = page.frames().find((f) => f !== page.mainFrame());
  const result = {
    frame_url: frame ? frame.url() : null,
    forms: frame ? await frame.locator('form').count() : 0,
    buttons: frame ? await frame.locator('button').count() : 0,
  };
  await page.close();
  return result;
}

async function main() {
  const out = {};
  const clientId = await register();
  const profile = mkdtempSync(join(tmpdir(), 'fjmcp-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    chromiumSandbox: false,
    args: FLAGS,
    viewport: { width: 900, height: 760 },
  });
  try {
    out.browser = context.browser()?.version() ?? null;
    await allowFlow(context, clientId, out);
    await denyFlow(context, clientId, out);
    await readOnlyFlow(context, clientId, out);
    out.consent_framed = await framed(context, authorization(clientId).url);
    out.login_framed = await framed(context, out.login_url);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  delete out.login_url; // carries the broker's state toward Forgejo
  return out;
}

main().then(
  (out) => {
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
  },
  (error) => {
    process.stdout.write(JSON.stringify({ error: String(error), stack: error?.stack ?? null }) + '\n');
    process.exit(1);
  },
);
