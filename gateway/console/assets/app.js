/* app.js - the estate-gw front-desk console: sign-in, live alerts with
 * sound, work orders with SLA countdowns and role-checked actions, the
 * patrol log with chain verification, meters with sparklines, unit
 * occupancy and the shift handover. Plain JavaScript, no build step.
 *
 * Everything shown is built with DOM calls (textContent), never innerHTML,
 * so texts from devices or users cannot inject markup. State-changing calls
 * send X-Requested-With: estate-console (the server's cross-site check);
 * the session is an HttpOnly cookie. Live changes come from
 * EventSource('/api/events'). */
'use strict';

/* ---------------------------------------------------------------- */
/* Texts                                                             */
/* ---------------------------------------------------------------- */

const TEXTS = {
  en: {
    console_title: 'Front-desk console', user_name: 'User', password: 'Password', sign_in: 'Sign in',
    sign_out: 'Sign out', wrong_login: 'Wrong user name or password.', too_many: 'Too many failed sign-ins; try again in {0} s.',
    tab_alerts: 'Alerts', tab_workorders: 'Work orders', tab_patrol: 'Patrol log', tab_meters: 'Meters',
    tab_units: 'Units', tab_handover: 'Handover', live_alerts: 'Live alerts', sound: 'Sound',
    show_acked: 'Show acknowledged', no_alerts: 'No active alerts.', acknowledge: 'Acknowledge',
    acknowledged: 'Acknowledged', since: 'since', cleared: 'cleared', filter_active: 'Open', filter_all: 'All',
    filter_closed: 'Closed', new_workorder: 'New work order', no_workorders: 'No work orders.',
    search: 'Search', verify_chain: 'Verify chain', checkin: 'Check in', time: 'Time', kind: 'Kind', text: 'Text',
    author: 'By', meter: 'Meter', category: 'Category', where: 'Where', status: 'Status', last_reading: 'Last reading',
    history_24h: '24 h', unit: 'Unit', building: 'Building', occupancy: 'Occupancy', changed: 'Changed',
    shift_handover: 'Shift handover', refresh: 'Refresh', hand_over: 'Hand over', close: 'Close', confirm: 'Confirm',
    live_title: 'Live updates', chain_ok: 'Chain intact ({0} entries)', chain_bad: 'Chain broken at #{0}: {1}',
    chain_unknown: 'Chain not checked', vacant: 'vacant', occupied: 'occupied', set_vacant: 'Set vacant',
    set_occupied: 'Set occupied', arrive_in: 'arrival due in {0}', arrive_late: 'arrival overdue by {0}',
    resolve_in: 'resolution due in {0}', resolve_late: 'resolution overdue by {0}', escalated: 'escalated',
    assignee: 'Assignee', verifier: 'Verifier (return visit)', note: 'Note', until: 'Postpone until', rating: 'Rating (1-5)',
    description: 'Description', location: 'Location', refused: 'Refused: {0}', done: 'Done.',
    act_dispatch: 'Dispatch', act_arrive: 'Arrived', act_complete: 'Complete', act_verify: 'Verify',
    act_cancel: 'Cancel', act_postpone: 'Postpone', act_note: 'Note', act_rating: 'Rate', act_create: 'Create',
    st_open: 'open', st_dispatched: 'dispatched', st_on_site: 'on site', st_completed: 'completed',
    st_verified: 'verified', st_cancelled: 'cancelled', sev_info: 'info', sev_minor: 'minor', sev_major: 'major',
    sev_critical: 'critical', open_incidents: 'Open incidents', open_workorders: 'Open work orders',
    overdue_workorders: 'Overdue work orders', unconfirmed_incidents: 'Unconfirmed incidents',
    meters_offline: 'Meters offline', to_user: 'Handed over to', nothing: 'Nothing.', workorder: 'Work order',
    incident: 'Incident', session_over: 'Your session ended; sign in again.', offline: 'offline', ok: 'ok',
    damaged: 'damaged', replaced: 'replaced', never: 'never', cat_water: 'water', cat_electricity: 'electricity',
    cat_doors_windows: 'doors/windows', cat_public_facilities: 'public facilities', cat_fire: 'fire', cat_other: 'other',
    confirm_occupancy: 'Set unit {0} to {1}?', new_alert: 'New alert',
  },
  zh: {
    console_title: '客服前台控制台', user_name: '用户名', password: '密码', sign_in: '登录', sign_out: '退出',
    wrong_login: '用户名或密码错误。', too_many: '登录失败次数过多，请 {0} 秒后再试。',
    tab_alerts: '告警', tab_workorders: '工单', tab_patrol: '巡查日志', tab_meters: '仪表', tab_units: '房屋',
    tab_handover: '交接班', live_alerts: '实时告警', sound: '声音', show_acked: '显示已确认', no_alerts: '当前没有告警。',
    acknowledge: '确认', acknowledged: '已确认', since: '开始于', cleared: '已恢复', filter_active: '未关闭',
    filter_all: '全部', filter_closed: '已关闭', new_workorder: '新建工单', no_workorders: '没有工单。', search: '搜索',
    verify_chain: '校验哈希链', checkin: '巡查签到', time: '时间', kind: '类型', text: '内容', author: '记录人',
    meter: '仪表', category: '类别', where: '位置', status: '状态', last_reading: '最新读数', history_24h: '24 小时',
    unit: '房号', building: '楼栋', occupancy: '入住状态', changed: '变更时间', shift_handover: '交接班',
    refresh: '刷新', hand_over: '交班', close: '关闭', confirm: '确定', live_title: '实时更新',
    chain_ok: '哈希链完整（{0} 条）', chain_bad: '哈希链在第 {0} 条断开：{1}', chain_unknown: '尚未校验',
    vacant: '空置', occupied: '入住', set_vacant: '设为空置', set_occupied: '设为入住',
    arrive_in: '{0} 内到场', arrive_late: '到场已超时 {0}', resolve_in: '{0} 内处理完毕',
    resolve_late: '处理已超时 {0}', escalated: '已升级', assignee: '派给', verifier: '回访人', note: '备注',
    until: '延期至', rating: '评分（1-5）', description: '描述', location: '位置', refused: '被拒绝：{0}',
    done: '已完成。', act_dispatch: '派单', act_arrive: '到场', act_complete: '完工', act_verify: '回访验收',
    act_cancel: '取消', act_postpone: '延期', act_note: '备注', act_rating: '评分', act_create: '创建',
    st_open: '待派单', st_dispatched: '已派单', st_on_site: '处理中', st_completed: '已完工', st_verified: '已验收',
    st_cancelled: '已取消', sev_info: '提示', sev_minor: '一般', sev_major: '重要', sev_critical: '紧急',
    open_incidents: '未恢复告警', open_workorders: '未关闭工单', overdue_workorders: '超时工单',
    unconfirmed_incidents: '未经巡查确认的告警', meters_offline: '离线仪表', to_user: '接班人', nothing: '无。',
    workorder: '工单', incident: '告警', session_over: '登录已过期，请重新登录。', offline: '离线', ok: '正常',
    damaged: '损坏', replaced: '已更换', never: '从未', cat_water: '水', cat_electricity: '电',
    cat_doors_windows: '门窗', cat_public_facilities: '公共设施', cat_fire: '消防', cat_other: '其他',
    confirm_occupancy: '将 {0} 设为{1}？', new_alert: '新告警',
  },
};

const RULES = {
  en: { reverse_energy: 'Reverse energy', vacant_flow: 'Water use in a vacant unit', continuous_flow: 'Continuous flow (leak)',
    fire_alarm: 'Fire alarm', fire_fault: 'Fire panel fault', fire_disabled: 'Fire zone disabled', meter_offline: 'Meter offline',
    implausible_reading: 'Implausible reading', meter_replaced: 'Meter replaced', balance_loss: 'Balance loss',
    fire_supervisory: 'Fire supervisory', vacant_power: 'Electricity in a vacant unit',
    battery_low: 'Battery low' },
  zh: { reverse_energy: '电表反向计量', vacant_flow: '空置房用水', continuous_flow: '持续用水（疑似漏水）',
    fire_alarm: '火警', fire_fault: '消防故障', fire_disabled: '消防回路屏蔽', meter_offline: '仪表离线',
    implausible_reading: '读数异常', meter_replaced: '仪表被更换', balance_loss: '分表不平衡（疑似漏损）',
    fire_supervisory: '消防监管', vacant_power: '空置房用电', battery_low: '电池电量低' },
};

const WO_ACTIONS = ['dispatch', 'arrive', 'complete', 'verify', 'postpone', 'note', 'rating', 'cancel'];
/* Which actions make sense in which state (the server decides anyway). */
const ACTIONS_BY_STATE = {
  open: ['dispatch', 'postpone', 'note', 'cancel'],
  dispatched: ['dispatch', 'arrive', 'postpone', 'note', 'cancel'],
  on_site: ['complete', 'postpone', 'note', 'cancel'],
  completed: ['verify', 'note', 'rating', 'cancel'],
  verified: ['rating', 'note'],
  cancelled: [],
};
/* Fields each action asks for. */
const ACTION_FIELDS = {
  dispatch: [['assignee', 'engineer', true], ['note', 'textarea', false]],
  arrive: [['note', 'textarea', false]],
  complete: [['note', 'textarea', false]],
  verify: [['verifier', 'text', true], ['note', 'textarea', false]],
  cancel: [['note', 'textarea', true]],
  postpone: [['until', 'datetime-local', true], ['note', 'textarea', true]],
  note: [['note', 'textarea', true]],
  rating: [['rating', 'number', true], ['note', 'textarea', false]],
  create: [['category', 'category', true], ['unit', 'text', false], ['location', 'text', true],
    ['description', 'textarea', true]],
};

/* ---------------------------------------------------------------- */
/* State                                                             */
/* ---------------------------------------------------------------- */

const state = {
  lang: 'zh',
  me: null,
  alerts: new Map(),        // id -> alert
  workorders: new Map(),    // id -> work order
  patrol: [],               // newest first
  meters: [],
  units: [],
  tab: 'alerts',
  events: null,
  audio: null,
  clockSkewMs: 0,           // server now - browser now
};

const $ = (id) => document.getElementById(id);

function t(key, ...args) {
  const text = (TEXTS[state.lang] && TEXTS[state.lang][key]) || TEXTS.en[key] || key;
  return text.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)]));
}

function ruleName(rule) {
  return (RULES[state.lang] && RULES[state.lang][rule]) || rule;
}

/* el('div', {class: 'x', onclick: fn}, child, 'text', ...) */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const locale = state.lang === 'zh' ? 'zh-CN' : 'en-GB';
  const zone = state.me && state.me.timezone;
  if (zone) {
    // Site time (the gateway's timezone, with its daylight saving), not the browser's.
    try { return d.toLocaleString(locale, { hour12: false, timeZone: zone }); } catch (e) { /* unknown to this browser */ }
  }
  return d.toLocaleString(locale, { hour12: false });
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (h >= 48) return `${Math.floor(h / 24)}d ${h % 24}h`;
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

function serverNow() {
  return Date.now() + state.clockSkewMs;
}

let toastTimer = null;
function toast(message, bad) {
  const node = $('toast');
  node.textContent = message;
  node.className = 'toast' + (bad ? ' bad' : '');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.classList.add('hidden'), bad ? 6000 : 2500);
}

/* ---------------------------------------------------------------- */
/* API                                                               */
/* ---------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const options = { method, credentials: 'same-origin', headers: { 'X-Requested-With': 'estate-console' } };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401 && path !== '/api/login') {
    showLogin(t('session_over'));
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/* ---------------------------------------------------------------- */
/* Language                                                          */
/* ---------------------------------------------------------------- */

function pickLanguage(serverLanguage) {
  const saved = localStorage.getItem('estate.lang');
  if (saved === 'zh' || saved === 'en') return saved;
  const hint = serverLanguage || navigator.language || 'zh-CN';
  return hint.toLowerCase().startsWith('en') ? 'en' : 'zh';
}

function applyLanguage() {
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
  document.querySelectorAll('[data-i18n]').forEach((n) => { n.textContent = t(n.dataset.i18n); });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
  document.querySelectorAll('[data-i18n-title]').forEach((n) => { n.title = t(n.dataset.i18nTitle); });
  $('lang-toggle').textContent = state.lang === 'zh' ? 'EN' : '中文';
  document.title = `${t('console_title')} - estate-gw`;
  if (state.me) renderAll();
}

/* ---------------------------------------------------------------- */
/* Sign-in                                                           */
/* ---------------------------------------------------------------- */

function showLogin(message) {
  stopEvents();
  state.me = null;
  $('app-view').classList.add('hidden');
  $('logout').classList.add('hidden');
  $('login-view').classList.remove('hidden');
  $('who').textContent = '';
  $('login-error').textContent = message || '';
  $('login-user').focus();
}

async function onLogin(event) {
  event.preventDefault();
  unlockAudio();
  $('login-error').textContent = '';
  try {
    await api('POST', '/api/login', { user: $('login-user').value, password: $('login-password').value });
    $('login-password').value = '';
    await startSession();
  } catch (e) {
    if (e.status === 429) $('login-error').textContent = t('too_many', (e.body && e.body.retry_after) || '?');
    else if (e.status === 401) $('login-error').textContent = t('wrong_login');
    else $('login-error').textContent = e.message;
  }
}

async function onLogout() {
  try { await api('POST', '/api/logout'); } catch (e) { /* signed out anyway */ }
  showLogin('');
}

async function startSession() {
  const me = await api('GET', '/api/me');
  state.me = me;
  state.clockSkewMs = Date.parse(me.now) - Date.now() || 0;
  if (!localStorage.getItem('estate.lang')) state.lang = pickLanguage(me.language);
  $('login-view').classList.add('hidden');
  $('app-view').classList.remove('hidden');
  $('logout').classList.remove('hidden');
  $('site-name').textContent = `${me.site} · ${me.gateway}`;
  $('who').textContent = `${me.user} (${me.role})`;
  const p = me.permissions || {};
  $('wo-create').classList.toggle('hidden', !(p.workorder && p.workorder.create));
  $('patrol-checkin').classList.toggle('hidden', !p['patrol-checkin']);
  $('handover-do').classList.toggle('hidden', !p.handover);
  applyLanguage();
  startEvents();
  await refreshAll();
  openLinkedRecord();
}

/* A notification's link (?incident=N or ?workorder=N) opens that record's
 * tab with the record marked, so the person it woke can acknowledge it. */
function openLinkedRecord() {
  const params = new URLSearchParams(window.location.search);
  const incident = Number(params.get('incident'));
  const workorder = Number(params.get('workorder'));
  const [tab, selector] = incident > 0 ? ['alerts', `.alert[data-id="${incident}"]`]
    : workorder > 0 ? ['workorders', `.wo[data-id="${workorder}"]`] : [null, null];
  if (!tab) return;
  if (tab === 'alerts') $('show-acked').checked = true; /* show it even if acknowledged */
  showTab(tab);
  renderAlerts();
  const node = document.querySelector(selector);
  if (node) {
    node.classList.add('linked');
    node.scrollIntoView({ block: 'center' });
  }
}

function can(verb, action) {
  const p = (state.me && state.me.permissions) || {};
  if (verb === 'workorder') return !!(p.workorder && p.workorder[action]);
  return !!p[verb];
}

/* ---------------------------------------------------------------- */
/* Live events                                                       */
/* ---------------------------------------------------------------- */

function startEvents() {
  stopEvents();
  const source = new EventSource('/api/events');
  state.events = source;
  source.onopen = () => setLive(true);
  source.onerror = () => {
    setLive(false);
    /* EventSource retries by itself; a 401 closes it for good. */
    if (source.readyState === EventSource.CLOSED) setTimeout(checkSession, 3000);
  };
  source.addEventListener('alert', (e) => onAlertEvent(JSON.parse(e.data)));
  source.addEventListener('workorder', (e) => onWorkorderEvent(JSON.parse(e.data)));
  source.addEventListener('patrol', (e) => onPatrolEvent(JSON.parse(e.data)));
  source.addEventListener('escalation', (e) => onEscalation(JSON.parse(e.data)));
  source.addEventListener('reset', () => refreshAll());
}

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
  setLive(false);
}

async function checkSession() {
  if (!state.me) return;
  try { await api('GET', '/api/me'); startEvents(); } catch (e) { /* showLogin done by api() */ }
}

function setLive(on) {
  $('live-state').className = 'live ' + (on ? 'on' : 'off');
}

function onAlertEvent(a) {
  const known = state.alerts.get(a.id);
  if (a.state === 'cleared') {
    if (known) { known.state = 'cleared'; known.cleared = a.cleared || a.ts; }
    renderAlerts();
    setTimeout(() => { state.alerts.delete(a.id); renderAlerts(); }, 30000);
    return;
  }
  const merged = Object.assign({}, known || {}, a, { state: 'active', raised: a.raised || (known && known.raised) || a.ts });
  merged.fresh = !known;
  state.alerts.set(a.id, merged);
  if (!known && (a.severity === 'major' || a.severity === 'critical')) {
    beep(a.severity);
    toast(`${t('new_alert')}: ${ruleName(a.rule)} ${a.text || ''}`, a.severity === 'critical');
  }
  renderAlerts();
}

function onWorkorderEvent(wo) {
  if (wo && wo.id) state.workorders.set(wo.id, wo);
  renderWorkorders();
}

function onPatrolEvent(entry) {
  if (!state.patrol.some((e) => e.seq === entry.seq)) {
    entry.fresh = true;
    state.patrol.unshift(entry);
  }
  renderPatrol();
}

function onEscalation(ev) {
  toast(`${t('workorder')} #${ev.workorder}: ${t('escalated')} (${ev.kind})`, true);
  beep('major');
}

/* ---------------------------------------------------------------- */
/* Sound                                                             */
/* ---------------------------------------------------------------- */

function unlockAudio() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  if (!state.audio) state.audio = new Ctx();
  if (state.audio.state === 'suspended') state.audio.resume();
}

/* Two short tones for major, three higher ones for critical. */
function beep(severity) {
  if (!$('sound-on').checked || !state.audio) return;
  const ctx = state.audio;
  const critical = severity === 'critical';
  const tones = critical ? 3 : 2;
  for (let i = 0; i < tones; i++) {
    const start = ctx.currentTime + i * 0.25;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'square';
    osc.frequency.value = critical ? 1320 : 880;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start);
    osc.stop(start + 0.2);
  }
}

/* ---------------------------------------------------------------- */
/* Loading                                                           */
/* ---------------------------------------------------------------- */

async function refreshAll() {
  await Promise.allSettled([loadAlerts(), loadWorkorders(), loadPatrol(), loadMeters(), loadUnits(), loadHandover(),
    loadChain()]);
}

async function loadAlerts() {
  const data = await api('GET', '/api/alerts?state=active');
  const fresh = new Map();
  for (const a of data.alerts) fresh.set(a.id, a);
  state.alerts = fresh;
  renderAlerts();
}

async function loadWorkorders() {
  const filter = $('wo-filter').value;
  const data = await api('GET', '/api/workorders?state=' + encodeURIComponent(filter));
  state.clockSkewMs = Date.parse(data.now) - Date.now() || state.clockSkewMs;
  state.workorders = new Map(data.workorders.map((w) => [w.id, w]));
  renderWorkorders();
}

async function loadPatrol() {
  const data = await api('GET', '/api/patrol?limit=500');
  state.patrol = data.entries.reverse();
  renderPatrol();
}

async function loadChain() {
  const node = $('chain-state');
  try {
    const v = await api('GET', '/api/patrol/verify');
    node.className = 'chain ' + (v.intact ? 'ok' : 'bad');
    node.textContent = v.intact ? t('chain_ok', v.count) : t('chain_bad', v.first_bad_seq, v.problem || '');
  } catch (e) {
    node.className = 'chain';
    node.textContent = t('chain_unknown');
  }
}

async function loadMeters() {
  const data = await api('GET', '/api/meters');
  state.meters = data.meters.filter((m) => !m.removed);
  renderMeters();
  loadSparklines();
}

async function loadUnits() {
  const data = await api('GET', '/api/units');
  state.units = data.units.filter((u) => !u.removed);
  renderUnits();
}

async function loadHandover() {
  const data = await api('GET', '/api/handover');
  renderHandover(data.handover);
}

/* ---------------------------------------------------------------- */
/* Alerts                                                            */
/* ---------------------------------------------------------------- */

const SEVERITY_ORDER = { critical: 3, major: 2, minor: 1, info: 0 };

/* Acknowledged on the server (who and when, the same in every console). */
function isAcked(a) {
  return Boolean(a.acked_by);
}

/* Most severe first, then newest. */
function alertOrder(a, b) {
  return (SEVERITY_ORDER[b.severity] || 0) - (SEVERITY_ORDER[a.severity] || 0) ||
    String(b.raised || b.ts || '').localeCompare(String(a.raised || a.ts || '')) || b.id - a.id;
}

function renderAlerts() {
  const list = $('alerts-list');
  const showAcked = $('show-acked').checked;
  const alerts = [...state.alerts.values()].sort(alertOrder);
  const visible = alerts.filter((a) => showAcked || !isAcked(a));
  list.replaceChildren(...visible.map(alertCard));
  $('alerts-empty').classList.toggle('hidden', visible.length > 0);
  const unacked = alerts.filter((a) => a.state !== 'cleared' && !isAcked(a)).length;
  $('count-alerts').textContent = unacked ? String(unacked) : '';
}

/* What an incident is about, as every list shows it: "FP-1 / zone 3". Zones
 * arrive 1-based (as the panel counts them) from the API and the live events. */
function incidentSubject(a) {
  const subject = a.meter || a.unit || a.panel || a.subject || '';
  const zone = a.zone !== undefined && a.zone !== null ? ` / zone ${a.zone}` : '';
  return subject + zone;
}

function alertCard(a) {
  const acked = isAcked(a);
  const card = el('div', { class: `card alert sev-${a.severity}${a.fresh ? ' fresh' : ''}${acked ? ' acked' : ''}${a.state === 'cleared' ? ' cleared' : ''}`, 'data-id': a.id, 'data-rule': a.rule },
    el('div', {},
      el('div', { class: 'title' }, el('span', { class: `sev ${a.severity}` }, t('sev_' + a.severity)), ' ', ruleName(a.rule), ' · ', incidentSubject(a)),
      el('div', {}, a.text || ''),
      el('div', { class: 'meta' }, `#${a.id} · ${t('since')} ${fmtTime(a.since || a.raised)}`, a.state === 'cleared' ? ` · ${t('cleared')}` : '')),
    el('div', {}, acked ? el('span', { class: 'meta acked-by' }, `${t('acknowledged')}: ${a.acked_by} ${fmtTime(a.acked)}`)
      : (can('incident', 'ack') && a.id ? el('button', { type: 'button', class: 'ack', onclick: () => acknowledge(a.id) }, t('acknowledge')) : null)));
  a.fresh = false;
  return card;
}

/* An open critical alert nobody has acknowledged sounds again every minute. */
const REPEAT_UNACKED_MS = 60000;
setInterval(() => {
  const waiting = [...state.alerts.values()].some((a) => a.state !== 'cleared' && a.severity === 'critical' && !isAcked(a));
  if (waiting && state.me) beep('critical');
}, REPEAT_UNACKED_MS);

/* Acknowledging is recorded by the gateway (who and when, in the patrol
 * log) and reaches every console through the live events. */
async function acknowledge(id) {
  try {
    const result = await api('POST', `/api/alerts/${id}/ack`, {});
    if (result && result.incident) state.alerts.set(id, { ...state.alerts.get(id), ...result.incident });
    renderAlerts();
  } catch (e) {
    if (e.status !== 401) toast(t('refused', e.message));
  }
}

/* ---------------------------------------------------------------- */
/* Work orders                                                       */
/* ---------------------------------------------------------------- */

function renderWorkorders() {
  const filter = $('wo-filter').value;
  const closed = (s) => s === 'verified' || s === 'cancelled';
  const orders = [...state.workorders.values()]
    .filter((w) => filter === 'all' || (filter === 'active' ? !closed(w.state) : closed(w.state)))
    .sort((a, b) => b.id - a.id);
  $('wo-list').replaceChildren(...orders.map(workorderCard));
  $('wo-empty').classList.toggle('hidden', orders.length > 0);
  const open = [...state.workorders.values()].filter((w) => !closed(w.state)).length;
  $('count-workorders').textContent = open ? String(open) : '';
  updateCountdowns();
}

function workorderCard(w) {
  const actions = (ACTIONS_BY_STATE[w.state] || []).filter((a) => can('workorder', a));
  const where = [w.unit, w.location].filter(Boolean).join(' · ');
  const last = (w.history || []).slice(-3);
  return el('div', { class: 'card wo', 'data-id': w.id, 'data-state': w.state },
    el('div', { class: 'wo-head' },
      el('span', { class: 'title' }, `#${w.id} `, t('cat_' + w.category) !== 'cat_' + w.category ? t('cat_' + w.category) : w.category, ' · ', where),
      el('span', { class: `state ${w.state}` }, t('st_' + w.state))),
    el('div', {}, w.description || ''),
    el('div', { class: 'meta' },
      w.severity ? el('span', { class: `sev ${w.severity}` }, t('sev_' + w.severity)) : null, ' ',
      w.assignee ? `${t('assignee')}: ${w.assignee} · ` : '', w.verifier ? `${t('verifier')}: ${w.verifier} · ` : '',
      w.rating ? `★${w.rating} · ` : '', fmtTime(w.opened)),
    slaLine(w),
    w.escalated ? el('div', { class: 'escalated' }, t('escalated')) : null,
    last.length ? el('ul', { class: 'history' }, last.map((h) =>
      el('li', {}, `${fmtTime(h.ts)} ${h.who || ''}: ${h.action}${h.note ? ' – ' + h.note : ''}`))) : null,
    actions.length ? el('div', { class: 'actions' }, actions.map((a) =>
      el('button', { type: 'button', 'data-action': a, class: a === 'cancel' ? 'danger' : (a === actions[0] ? 'primary' : ''),
        onclick: () => openAction(a, w) }, t('act_' + a)))) : null);
}

/* The SLA countdown that matters in the current state. */
function slaLine(w) {
  let due = null, kind = null;
  if (w.state === 'dispatched' && w.arrive_due) { due = w.arrive_due; kind = 'arrive'; }
  else if (['open', 'dispatched', 'on_site'].includes(w.state)) { due = w.postponed_until || w.resolve_due; kind = 'resolve'; }
  if (!due) return null;
  return el('div', { class: 'sla', 'data-due': due, 'data-kind': kind });
}

function updateCountdowns() {
  const now = serverNow();
  document.querySelectorAll('.sla[data-due]').forEach((node) => {
    const left = Date.parse(node.dataset.due) - now;
    const kind = node.dataset.kind;
    node.textContent = left >= 0 ? t(kind + '_in', fmtDuration(left)) : t(kind + '_late', fmtDuration(left));
    node.classList.toggle('late', left < 0);
    node.classList.toggle('soon', left >= 0 && left < 5 * 60 * 1000);
  });
}

/* ---------------------------------------------------------------- */
/* Action dialog                                                     */
/* ---------------------------------------------------------------- */

let dialogSubmit = null;

function openDialog(title, fields, submit) {
  $('action-title').textContent = title;
  $('action-error').textContent = '';
  $('action-fields').replaceChildren(...fields.map(([name, type, required]) => {
    let input;
    if (type === 'textarea') input = el('textarea', { name, required, maxlength: 2000 });
    else if (type === 'category') {
      input = el('select', { name, required },
        ['water', 'electricity', 'doors_windows', 'public_facilities', 'fire', 'other'].map((c) => el('option', { value: c }, t('cat_' + c))));
    } else if (type === 'engineer') {
      /* the site's engineers, from /api/engineers: a dispatch to nobody is refused */
      input = el('select', { name, required }, (state.engineers || []).map((n) => el('option', { value: n }, n)));
    } else if (type === 'number') input = el('input', { name, type: 'number', min: 1, max: 5, step: 1, required, value: 5 });
    else input = el('input', { name, type, required, maxlength: 256 });
    if (name === 'verifier') input.value = state.me ? state.me.user : '';
    return el('label', {}, el('span', {}, t(name)), input);
  }));
  dialogSubmit = submit;
  $('modal').classList.remove('hidden');
  const first = $('action-fields').querySelector('input, textarea, select');
  if (first) first.focus();
}

function closeDialog() {
  $('modal').classList.add('hidden');
  dialogSubmit = null;
}

function formValues() {
  const values = {};
  $('action-fields').querySelectorAll('input, textarea, select').forEach((input) => {
    const v = input.value.trim();
    if (!v) return;
    if (input.name === 'rating') values.rating = Number(v);
    else if (input.name === 'until') values.until = new Date(v).toISOString();
    else values[input.name] = v;
  });
  return values;
}

async function onDialogSubmit(event) {
  event.preventDefault();
  if (!dialogSubmit) return;
  const submit = $('action-submit');
  submit.disabled = true;
  try {
    await dialogSubmit(formValues());
    closeDialog();
    toast(t('done'));
  } catch (e) {
    if (e.status !== 401) $('action-error').textContent = t('refused', e.message);
  } finally {
    submit.disabled = false;
  }
}

async function openAction(action, w) {
  if (action === 'dispatch') {
    try { state.engineers = await api('GET', '/api/engineers'); } catch (e) { state.engineers = state.engineers || []; }
  }
  openDialog(`${t('act_' + action)} · ${t('workorder')} #${w.id}`, ACTION_FIELDS[action] || [], async (values) => {
    const result = await api('POST', `/api/workorders/${w.id}/${action}`, values);
    await refreshWorkorder(w.id, result);
  });
}

async function refreshWorkorder(id, result) {
  const wo = result && result.workorder && typeof result.workorder === 'object' ? result.workorder : null;
  if (wo && wo.id) state.workorders.set(wo.id, wo);
  else {
    try { const data = await api('GET', `/api/workorders/${id}`); state.workorders.set(id, data.workorder); } catch (e) { /* SSE will tell */ }
  }
  renderWorkorders();
}

function openCreate() {
  openDialog(t('new_workorder'), ACTION_FIELDS.create, async (values) => {
    const result = await api('POST', '/api/workorders', values);
    const id = result.id || (result.workorder && result.workorder.id);
    if (id) await refreshWorkorder(id, result);
    else await loadWorkorders();
  });
}

/* ---------------------------------------------------------------- */
/* Patrol log                                                        */
/* ---------------------------------------------------------------- */

function renderPatrol() {
  const needle = $('patrol-search').value.trim().toLowerCase();
  const rows = state.patrol.filter((e) => !needle ||
    [e.text, e.author, e.kind, String(e.seq), e.workorder ? '#' + e.workorder : ''].join(' ').toLowerCase().includes(needle));
  $('patrol-table').tBodies[0].replaceChildren(...rows.slice(0, 500).map((e) => {
    const row = el('tr', { class: e.fresh ? 'new-row' : '', 'data-seq': e.seq },
      el('td', { class: 'num' }, e.seq), el('td', { class: 'num' }, fmtTime(e.ts)), el('td', {}, e.kind),
      el('td', {}, e.text), el('td', {}, e.author));
    e.fresh = false;
    return row;
  }));
}

function openCheckin() {
  openDialog(t('checkin'), [['location', 'text', true], ['text', 'textarea', true]], async (values) => {
    await api('POST', '/api/patrol/checkin', values);
    await loadPatrol();
  });
}

/* ---------------------------------------------------------------- */
/* Meters                                                            */
/* ---------------------------------------------------------------- */

/* The quantity that best sums a meter up. */
function mainQuantity(m) {
  return m.kind === 'water' ? ['volume_m3', 'm³', 'flow_m3h', 'm³/h'] : ['energy_import_kwh', 'kWh', 'power_w', 'W'];
}

function readingText(m) {
  if (!m.values) return t('never');
  const [q1, u1, q2, u2] = mainQuantity(m);
  const parts = [];
  if (typeof m.values[q1] === 'number') parts.push(`${m.values[q1].toFixed(2)} ${u1}`);
  if (typeof m.values[q2] === 'number') parts.push(`${m.values[q2].toFixed(q2 === 'power_w' ? 0 : 3)} ${u2}`);
  if (typeof m.values.valve === 'string') parts.push(`valve ${m.values.valve}`);
  return parts.join(' · ');
}

function renderMeters() {
  const needle = $('meter-search').value.trim().toLowerCase();
  const meters = state.meters.filter((m) => !needle ||
    [m.id, m.category, m.unit, m.building, m.location, m.status, m.address].join(' ').toLowerCase().includes(needle));
  $('meter-table').tBodies[0].replaceChildren(...meters.map((m) => el('tr', { 'data-meter': m.id },
    el('td', {}, el('strong', {}, m.id), el('div', { class: 'meta' }, `${m.driver || ''} ${m.address ? m.address : `#${m.slave}`}`)),
    el('td', {}, m.category),
    el('td', {}, [m.unit, m.location || (m.building ? `${t('building')} ${m.building}` : '')].filter(Boolean).join(' · ')),
    el('td', {}, el('span', { class: `status ${m.status}` }, t(m.status || 'ok'))),
    el('td', { class: 'num' }, readingText(m), el('div', { class: 'meta' }, fmtTime(m.last_good))),
    el('td', { class: 'spark-cell', 'data-meter': m.id }, m.sparkline || ''))));
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function sparkline(points, quantity) {
  const values = points.map((p) => p[quantity]).filter((v) => typeof v === 'number');
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 120 28');
  svg.setAttribute('preserveAspectRatio', 'none');
  if (values.length < 2) return svg;
  const min = Math.min(...values), max = Math.max(...values);
  const span = max - min || 1;
  const line = document.createElementNS(SVG_NS, 'polyline');
  line.setAttribute('points', values.map((v, i) =>
    `${(i * 120 / (values.length - 1)).toFixed(1)},${(26 - (v - min) * 24 / span).toFixed(1)}`).join(' '));
  svg.append(line);
  const title = document.createElementNS(SVG_NS, 'title');
  title.textContent = `${quantity}: ${min.toFixed(2)} – ${max.toFixed(2)}`;
  svg.append(title);
  return svg;
}

/* Loads every meter's last 24 h, a few at a time. */
async function loadSparklines() {
  const queue = [...state.meters];
  const worker = async () => {
    while (queue.length) {
      const m = queue.shift();
      try {
        const data = await api('GET', `/api/meters/${encodeURIComponent(m.id)}/history`);
        const quantity = m.kind === 'water' ? 'volume_m3' : 'energy_import_kwh';
        m.sparkline = sparkline(data.points, quantity);
        const cell = document.querySelector(`td.spark-cell[data-meter="${CSS.escape(m.id)}"]`);
        if (cell) cell.replaceChildren(m.sparkline);
      } catch (e) { /* leave the cell empty */ }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}

/* ---------------------------------------------------------------- */
/* Units                                                             */
/* ---------------------------------------------------------------- */

function renderUnits() {
  const allowed = can('occupancy');
  $('unit-table').tBodies[0].replaceChildren(...state.units.map((u) => {
    const next = u.occupancy === 'vacant' ? 'occupied' : 'vacant';
    return el('tr', { 'data-unit': u.id },
      el('td', {}, el('strong', {}, u.id)), el('td', {}, u.building || ''),
      el('td', {}, el('span', { class: `status ${u.occupancy === 'vacant' ? 'replaced' : ''}` }, t(u.occupancy))),
      el('td', {}, fmtTime(u.changed), u.changed_by ? el('div', { class: 'meta' }, u.changed_by) : null),
      el('td', {}, allowed ? el('button', { type: 'button', 'data-occupancy': next,
        onclick: () => setOccupancy(u.id, next) }, t('set_' + next)) : null));
  }));
}

async function setOccupancy(unit, occupancy) {
  if (!window.confirm(t('confirm_occupancy', unit, t(occupancy)))) return;
  try {
    await api('POST', `/api/units/${encodeURIComponent(unit)}/occupancy`, { occupancy });
    toast(t('done'));
  } catch (e) {
    if (e.status !== 401) toast(t('refused', e.message), true);
  }
  await loadUnits();
}

/* ---------------------------------------------------------------- */
/* Handover                                                          */
/* ---------------------------------------------------------------- */

function handoverList(title, items, describe) {
  return el('div', { class: 'card' }, el('h3', {}, title),
    items && items.length ? el('ul', {}, items.map((i) => el('li', {}, describe(i)))) : el('p', { class: 'meta' }, t('nothing')));
}

function renderHandover(h) {
  if (!h) return;
  const c = h.counts || {};
  const stat = (key) => el('div', { class: 'card' }, el('div', { class: 'n' + (c[key] ? ' bad' : '') }, c[key] || 0), el('div', { class: 'meta' }, t(key)));
  const byId = (list) => (id) => {
    const found = (list || []).find((x) => x && x.id === id);
    return found ? describeAny(found) : `#${id}`;
  };
  $('handover-view').replaceChildren(
    el('p', { class: 'meta' }, fmtTime(h.ts)),
    el('div', { class: 'summary' }, ['open_incidents', 'open_workorders', 'overdue_workorders', 'unconfirmed_incidents', 'meters_offline'].map(stat)),
    el('div', { class: 'handover-lists' },
      handoverList(t('open_incidents'), h.open_incidents, describeAny),
      handoverList(t('open_workorders'), h.open_workorders, describeAny),
      handoverList(t('overdue_workorders'), h.overdue_workorders, byId(h.open_workorders)),
      handoverList(t('unconfirmed_incidents'), h.unconfirmed_incidents, byId(h.open_incidents)),
      handoverList(t('meters_offline'), h.meters_offline, describeAny)));
}

function describeAny(x) {
  if (typeof x !== 'object' || x === null) return String(x);
  if (x.rule) return `#${x.id} ${ruleName(x.rule)} · ${incidentSubject(x)} ${x.text || ''}`;
  if (x.state) return `#${x.id} ${t('st_' + x.state)} · ${[x.unit, x.location].filter(Boolean).join(' · ')} ${x.description || ''}`;
  return x.id || x.meter || JSON.stringify(x);
}

function openHandover() {
  openDialog(t('hand_over'), [['to', 'text', true], ['note', 'textarea', false]], async (values) => {
    await api('POST', '/api/handover', values);
    await Promise.allSettled([loadHandover(), loadPatrol()]);
  });
}

/* ---------------------------------------------------------------- */
/* Wiring                                                            */
/* ---------------------------------------------------------------- */

function renderAll() {
  renderAlerts();
  renderWorkorders();
  renderPatrol();
  renderMeters();
  renderUnits();
  loadHandover().catch(() => {});
  loadChain();
}

function showTab(tab) {
  state.tab = tab;
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === tab));
  document.querySelectorAll('main .tab').forEach((s) => s.classList.toggle('hidden', s.id !== 'tab-' + tab));
  if (tab === 'meters') loadMeters().catch(() => {});
  if (tab === 'handover') loadHandover().catch(() => {});
  if (tab === 'units') loadUnits().catch(() => {});
}

TEXTS.en.to = 'Hand over to';
TEXTS.zh.to = '接班人';

function init() {
  state.lang = pickLanguage(null);
  applyLanguage();
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', onLogout);
  $('lang-toggle').addEventListener('click', () => {
    state.lang = state.lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('estate.lang', state.lang);
    applyLanguage();
  });
  document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => { unlockAudio(); showTab(b.dataset.tab); }));
  $('show-acked').addEventListener('change', renderAlerts);
  $('wo-filter').addEventListener('change', () => loadWorkorders().catch(() => {}));
  $('wo-create').addEventListener('click', openCreate);
  $('patrol-search').addEventListener('input', renderPatrol);
  $('meter-search').addEventListener('input', renderMeters);
  $('chain-verify').addEventListener('click', loadChain);
  $('patrol-checkin').addEventListener('click', openCheckin);
  $('handover-refresh').addEventListener('click', () => loadHandover().catch(() => {}));
  $('handover-do').addEventListener('click', openHandover);
  $('action-form').addEventListener('submit', onDialogSubmit);
  $('action-cancel').addEventListener('click', closeDialog);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDialog(); });
  document.addEventListener('click', unlockAudio, { once: true });
  setInterval(updateCountdowns, 1000);
  /* Counters (readings) are not streamed: refresh the inventory now and then. */
  setInterval(() => { if (state.me && state.tab === 'meters') loadMeters().catch(() => {}); }, 60000);
  /* Already signed in (cookie)? */
  api('GET', '/api/me').then(() => startSession()).catch(() => showLogin(''));
}

document.addEventListener('DOMContentLoaded', init);
