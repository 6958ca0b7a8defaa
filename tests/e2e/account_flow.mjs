// The /account page in a real browser: Debian's chromium driven by
// playwright-core, run by tests/e2e/test_account_browser.py.
//
// It registers a client (DCR) and connects it the way a user does (consent,
// sign-in at the stand-in Forgejo, code exchange), then, in the same
// profile: opens /account (the login view), logs in through Forgejo, finds
// the client listed with full access (its choice preselected), chooses
// Read-only and clicks "Change access" (the mode shown and preselected
// changes, the client's token is refused by /mcp at once), connects the
// client again (the consent page preselects Read-only), clicks its Revoke
// button, sees the list empty
// and the new token refused by /mcp, logs out, and checks the page refuses
// to be framed. It prints one JSON object (no tokens).
//
// Usage: E2E_USER=.. E2E_PASSWORD=.. node account_flow.mjs --public-url URL
//          --forgejo-url URL --screenshots DIR [--chromium /usr/bin/chromium]

import { chromium } from 'playwright-core';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REDIRECT_URI = 'http://127.0.0.1:33421/callback';
const CLIENT_NAME = 'Account E2E Client';
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
      client_name: CLIENT_NAME,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    }),
  });
  if (response.status !== 201) throw new Error(`registration answered ${response.status}`);
  return (await response.json()).client_id;
}

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

// Sign in at the stand-in Forgejo if it asks (it may remember the browser).
async function signIn(page) {
  await page.waitForLoadState('domcontentloaded');
  if (page.url().startsWith(forgejoUrl) && (await page.locator('input[type=password]').count()) > 0) {
    await page.locator('input[type=text]').first().fill(user);
    await page.locator('input[type=password]').fill(password);
    await page.getByRole('button', { name: /sign in/i }).click();
  }
}

async function connect(context, clientId) {
  const page = await context.newPage();
  await page.route(`${REDIRECT_URI}**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<title>back at the client</title>' }),
  );
  const verifier = b64url(randomBytes(32));
  const url = new URL(`${publicUrl}/oauth/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    state: 'account-e2e',
    resource: `${publicUrl}/mcp`,
  }).toString();
  await page.goto(url.href);
  const checked = page.locator('input[name=mode]:checked');
  connect.preselected = (await checked.count()) === 1 ? await checked.getAttribute('value') : null;
  await page.getByRole('button', { name: /allow/i }).click();
  await reach(page, `${forgejoUrl}/`);
  await signIn(page);
  await reach(page, REDIRECT_URI);
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
      code_verifier: verifier,
    }),
  });
  if (token.status !== 200) throw new Error(`token answered ${token.status}`);
  return (await token.json()).access_token;
}

async function initialize(accessToken) {
  const response = await fetch(`${publicUrl}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'account-e2e', version: '1' } },
    }),
  });
  await response.text();
  return response.status;
}

async function framed(context, target) {
  const page = await context.newPage();
  await page.route('http://embedder.test/**', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'text/html',
      body: `<!DOCTYPE html><title>embedder</title><iframe id="f" src="${target}"
        onload="document.title='frame loaded'" width="800" height="600"></iframe>`,
    }),
  );
  await page.goto('http://embedder.test/page.html');
  await page.waitForFunction(() => document.title === 'frame loaded', null, { timeout: STEP_TIMEOUT });
  const frame = page.frames().find((f) => f !== page.mainFrame());
  const result = { frame_url: frame ? frame.url() : null, forms: frame ? await frame.locator('form').count() : 0 };
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
    const accessToken = await connect(context, clientId);
    out.mcp_before = await initialize(accessToken);

    const page = await context.newPage();
    const first = await page.goto(`${publicUrl}/account`);
    const h = first.headers();
    out.headers = {
      x_frame_options: h['x-frame-options'] ?? null,
      frame_ancestors_none: /frame-ancestors\s+'none'/.test(h['content-security-policy'] ?? ''),
    };
    out.login_view = (await page.locator('body').innerText()).includes('Log in with Forgejo');
    await page.getByRole('link', { name: /log in with forgejo/i }).click();
    await reach(page, `${forgejoUrl}/`);
    await signIn(page);
    await reach(page, `${publicUrl}/account`);
    await page.locator('#user').waitFor({ timeout: STEP_TIMEOUT });
    out.user = await page.locator('#user').innerText();
    const listed = await page.locator('.connection').allInnerTexts();
    out.listed = listed.some((text) => text.includes(CLIENT_NAME) && text.includes(clientId));
    await page.screenshot({ path: join(shots, 'account.png'), fullPage: true });

    const row = page.locator('.connection', { hasText: clientId });
    out.mode_before = await row.locator('dd.mode').innerText();
    out.mode_before_preselected = await row.locator('input[name=mode]:checked').getAttribute('value');
    await row.getByLabel(/read-only/i).check();
    await row.getByRole('button', { name: /change access/i }).click();
    await page.waitForLoadState('domcontentloaded');
    const after = page.locator('.connection', { hasText: clientId });
    out.mode_after = await after.locator('dd.mode').innerText();
    out.mode_after_preselected = await after.locator('input[name=mode]:checked').getAttribute('value');
    out.mcp_after_mode = await initialize(accessToken);

    const again = await connect(context, clientId);
    out.reconnect_preselected = connect.preselected;
    out.mcp_reconnected = await initialize(again);
    await page.reload();
    await page.locator('.connection', { hasText: clientId }).getByRole('button', { name: /revoke/i }).click();
    await page.waitForLoadState('domcontentloaded');
    out.after_revoke_listed = (await page.locator('.connection', { hasText: clientId }).count()) > 0;
    out.mcp_after = await initialize(again);

    await page.getByRole('button', { name: /log out/i }).click();
    await page.waitForLoadState('domcontentloaded');
    out.logged_out = (await page.locator('body').innerText()).includes('Log in with Forgejo');
    await page.close();
    out.framed = await framed(context, `${publicUrl}/account`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
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
