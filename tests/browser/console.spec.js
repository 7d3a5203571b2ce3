/* console.spec.js - end-to-end test of the front-desk console in Debian's
 * chromium (headless, background networking off, fresh profile), driven by
 * playwright-core. Started by run.sh through stack.py, which provides
 * BASE_URL (the gateway's console) and SIM_CONTROL_PORT (the simulator's
 * control socket) in the environment.
 *
 * Story: the front desk signs in and sees a fire alarm appear live when the
 * test injects it into the simulator, dispatches the work order the
 * gateway opened; the engineer marks arrival and completion; the supervisor
 * verifies after the alarm cleared; a viewer sees no action buttons and is
 * refused (403) when acting anyway. Screenshots of every page are written
 * to ARTIFACTS. Exit status 0 on success. */
'use strict';

const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const BASE_URL = process.env.BASE_URL;
const SIM_CONTROL_PORT = Number(process.env.SIM_CONTROL_PORT);
const ARTIFACTS = process.env.ARTIFACTS || path.join(os.tmpdir(), 'estate-browser-artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORDS = { frontdesk: 'front123', engineer: 'eng123', supervisor: 'super123', viewer: 'view123' };

function log(message) {
  process.stdout.write(`[console.spec] ${message}\n`);
}

/* One request on the simulator's control socket. */
function simControl(request) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(SIM_CONTROL_PORT, '127.0.0.1');
    let data = '';
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error('simulator control timed out')); });
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.endsWith('\n')) {
        socket.end();
        const reply = JSON.parse(data);
        if (reply.ok) resolve(reply); else reject(new Error('simulator refused: ' + data));
      }
    });
    socket.on('error', reject);
  });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
  log(`screenshot ${name}.png`);
}

async function signIn(page, user) {
  await page.goto(BASE_URL + '/');
  await page.waitForSelector('#login-view:not(.hidden)');
  await page.fill('#login-user', user);
  await page.fill('#login-password', PASSWORDS[user]);
  await page.click('#login-submit');
  await page.waitForSelector('#app-view:not(.hidden)');
  await page.waitForSelector('#live-state.on', { timeout: 10000 });
  log(`signed in as ${user}`);
}

async function signOut(page) {
  await page.click('#logout');
  await page.waitForSelector('#login-view:not(.hidden)');
}

async function openTab(page, tab) {
  await page.click(`#tabs button[data-tab="${tab}"]`);
  await page.waitForSelector(`#tab-${tab}:not(.hidden)`);
}

/* Runs a work-order action through its button and dialog. */
async function act(page, id, action, fields) {
  const card = `.wo[data-id="${id}"]`;
  await page.click(`${card} button[data-action="${action}"]`);
  await page.waitForSelector('#modal:not(.hidden)');
  for (const [name, value] of Object.entries(fields || {})) {
    const field = `#action-fields [name="${name}"]`;
    const tag = await page.$eval(field, (node) => node.tagName);
    if (tag === 'SELECT') await page.selectOption(field, value); /* e.g. the engineers to dispatch to */
    else await page.fill(field, value);
  }
  await page.click('#action-submit');
  await page.waitForSelector('#modal.hidden', { state: 'attached', timeout: 10000 }).catch(async (e) => {
    const error = await page.textContent('#action-error');
    throw new Error(`${action} on work order ${id} failed: ${error || e.message}`);
  });
  log(`${action} work order ${id}`);
}

async function waitState(page, id, state) {
  await page.waitForSelector(`.wo[data-id="${id}"][data-state="${state}"]`, { timeout: 15000 });
}

async function main() {
  if (!BASE_URL || !SIM_CONTROL_PORT) throw new Error('BASE_URL and SIM_CONTROL_PORT must be set (use run.sh)');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'estate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-default-apps', '--metrics-recording-only',
      '--autoplay-policy=no-user-gesture-required'],
    viewport: { width: 1366, height: 768 },
    locale: 'zh-CN',
  });
  const page = context.pages()[0] || await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') log(`browser console: ${m.text()}`); });
  try {
    /* Front desk: a fire alarm appears live. */
    await signIn(page, 'frontdesk');
    await shot(page, '01-alerts-empty');
    await simControl({ cmd: 'event', device: 'FP-1', event: 'zone', zone: 3, state: 'alarm' });
    log('injected a fire alarm (FP-1 zone 3)');
    await page.waitForSelector('.alert[data-rule="fire_alarm"]', { timeout: 30000 });
    log('the alert appeared without a reload');
    await shot(page, '02-alert-live');

    /* Acknowledged on the gateway, not in this browser. */
    const alertId = await page.getAttribute('.alert[data-rule="fire_alarm"]', 'data-id');
    await page.check('#show-acked');
    await page.click(`.alert[data-id="${alertId}"] button.ack`);
    await page.waitForSelector(`.alert[data-id="${alertId}"] .acked-by`, { timeout: 10000 });
    log(`front desk acknowledged alert ${alertId}`);

    /* The gateway opened a work order for the critical incident. */
    await openTab(page, 'workorders');
    const card = await page.waitForSelector('.wo[data-state="open"]', { timeout: 20000 });
    const id = await card.getAttribute('data-id');
    await act(page, id, 'dispatch', { assignee: 'engineer', note: '请立即到场' });
    await waitState(page, id, 'dispatched');
    const sla = await page.textContent(`.wo[data-id="${id}"] .sla`);
    if (!sla || !sla.trim()) throw new Error('no SLA countdown on a dispatched order');
    log(`SLA: ${sla}`);
    await shot(page, '03-workorder-dispatched');
    await signOut(page);

    /* Engineer: arrival and completion. */
    await signIn(page, 'engineer');
    /* Another session sees who acknowledged; a notification's link opens the alert. */
    await page.goto(`${BASE_URL}/?incident=${alertId}`);
    await page.waitForSelector(`.alert.linked[data-id="${alertId}"] .acked-by`, { timeout: 15000 });
    const ackedBy = await page.textContent(`.alert[data-id="${alertId}"] .acked-by`);
    if (!ackedBy.includes('frontdesk')) throw new Error(`acknowledgement shows "${ackedBy}"`);
    if (await page.$(`.alert[data-id="${alertId}"] button.ack`)) throw new Error('an acknowledged alert offers ack');
    await openTab(page, 'workorders');
    await page.waitForSelector(`.wo[data-id="${id}"] button[data-action="arrive"]`);
    if (await page.$(`.wo[data-id="${id}"] button[data-action="dispatch"]`)) throw new Error('engineer offered dispatch');
    await act(page, id, 'arrive', { note: 'on site' });
    await waitState(page, id, 'on_site');
    await act(page, id, 'complete', { note: '探测器已复位' });
    await waitState(page, id, 'completed');
    await shot(page, '04-workorder-completed');
    await signOut(page);

    /* The alarm clears; the supervisor verifies with a return visit. */
    await simControl({ cmd: 'event', device: 'FP-1', event: 'zone', zone: 3, state: 'normal' });
    log('cleared the fire alarm');
    await signIn(page, 'supervisor');
    await page.waitForFunction(() => !document.querySelector('.alert[data-rule="fire_alarm"]:not(.cleared)'),
      null, { timeout: 30000 });
    await openTab(page, 'workorders');
    await act(page, id, 'verify', { verifier: 'supervisor', note: '回访住户，满意' });
    await page.selectOption('#wo-filter', 'all');
    await waitState(page, id, 'verified');
    await shot(page, '05-workorder-verified');
    await openTab(page, 'patrol');
    await page.waitForSelector('#patrol-table tbody tr');
    const patrolText = await page.textContent('#patrol-table');
    for (const user of ['frontdesk', 'engineer', 'supervisor']) {
      if (!patrolText.includes(user)) throw new Error(`patrol log has no entry by ${user}`);
    }
    await page.click('#chain-verify');
    await page.waitForSelector('#chain-state.ok');
    await shot(page, '06-patrol');
    await openTab(page, 'meters');
    await page.waitForSelector('#meter-table tbody tr');
    await page.waitForSelector('#meter-table svg.spark polyline', { timeout: 15000 });
    await shot(page, '07-meters');
    await openTab(page, 'units');
    await page.waitForSelector('#unit-table tbody tr button[data-occupancy]');
    await shot(page, '08-units');
    await openTab(page, 'handover');
    await page.waitForSelector('#handover-view .summary');
    await shot(page, '09-handover');
    await page.click('#lang-toggle');
    await openTab(page, 'workorders');
    await shot(page, '10-workorders-english');
    await signOut(page);

    /* Viewer: no buttons, and acting anyway is refused. */
    await signIn(page, 'viewer');
    await openTab(page, 'workorders');
    await page.selectOption('#wo-filter', 'all');
    await page.waitForSelector(`.wo[data-id="${id}"]`);
    const buttons = await page.$$('#wo-list button[data-action]');
    if (buttons.length) throw new Error(`viewer sees ${buttons.length} action buttons`);
    const status = await page.evaluate(async (woId) => {
      const r = await fetch(`/api/workorders/${woId}/note`, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'estate-console' },
        body: JSON.stringify({ note: 'viewer tries' }),
      });
      return r.status;
    }, id);
    if (status !== 403) throw new Error(`viewer action answered ${status}, expected 403`);
    log('viewer refused with 403');
    await shot(page, '11-viewer');

    /* The same console on a phone. */
    await page.setViewportSize({ width: 390, height: 844 });
    await openTab(page, 'alerts');
    await shot(page, '12-phone-alerts');
    await openTab(page, 'workorders');
    await shot(page, '13-phone-workorders');

    if (problems.length) throw new Error(problems.join('\n'));
    log('PASS');
  } catch (e) {
    await shot(page, 'failure').catch(() => {});
    throw e;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`[console.spec] FAIL: ${e.stack || e}\n`);
  process.exit(1);
});
