// @ts-check
/* global document, window, location, sessionStorage, fetch, setTimeout, clearTimeout -- a browser's (eslint.config.js knows Node's) */
/**
 * Tributary admin UI — plain ES module, no build step, no dependencies. Three screens over the REST
 * routes beside GraphQL (`src/server/rest/`): the cluster dashboard (refreshed every 5 s), the hot
 * topics and the alert center. Every element is built with the DOM API (`el`), never from HTML
 * strings: the server's Content-Security-Policy asks for Trusted Types and allows no inline code.
 *
 * The admin token (a bearer JWT) is kept in this tab's sessionStorage only: it goes when the tab
 * closes or with "Forget token". A server in development mode (no JWT_SECRET / JWT_JWKS_URL)
 * answers without a token: the page then asks for none.
 */

/**
 * What the routes answer (`src/server/rest/`).
 * @typedef {{ connections: number, subscriptions: number, eventsPerSecond: number,
 *   eventsPerSecondBySource: { source: string, perSecond: number }[], deliveriesPerSecond: number, bytesPerSecond: number,
 *   latencyP50Ms: number | null, latencyP99Ms: number | null,
 *   webhooks: { deliveredPerSecond: number, failedPerSecond: number, failureRate: number | null, pending: number | null, oldestPendingSeconds: number | null },
 *   cdc: { source: string, lagBytes: number | null, retainedWalBytes: number | null, safeWalBytes?: number | null }[],
 *   outboxes: { outbox: string, pending: number, oldestPendingSeconds: number | null }[] | null,
 *   resyncsPerSecond: number, slowConsumerClosesPerSecond: number }} Figures
 */
/** @typedef {{ at: number, cluster: Figures, instances: { instance: string, role: string, startedAt: number, reportedAt: number, gone: boolean, figures: Figures }[], warnings: string[] }} DashboardJson */
/**
 * @typedef {{ topic: string, tenant: string | null, count: number, eventsPerSecond: number, deliveries: number,
 *   deliveriesPerSecond: number, bytes: number, bytesPerSecond: number, latencyP50Ms: number | null,
 *   latencyP99Ms: number | null, webhookDeliveries: number, webhookFailures: number, resyncs: number }} HotTopic
 */
/** @typedef {{ window: string, by: string, topics: HotTopic[] }} HotTopicsJson */
/**
 * @typedef {{ id: string, rule: string, subject: string, tenant: string | null, severity: string, status: string,
 *   count: number, value: number | null, message: string, firstFiredAt: string, lastFiredAt: string,
 *   acknowledgedAt: string | null, acknowledgedBy: string | null, resolvedAt: string | null }} Alert
 */
/** @typedef {{ alerts: Alert[], endCursor: string | null, hasNextPage: boolean }} AlertsJson */
/** @typedef {string | number | Node | null | undefined} Child */

const TOKEN_KEY = 'tributary.adminToken';
const REFRESH_MS = 5000;
/** Asked without a token at start (and with one at sign-in): an admin route every role of admin may call. */
const PROBE = '/api/alerts?first=1';
const WINDOW_NAMES = /** @type {Record<string, string>} */ ({ '1m': 'last minute', '15m': 'last 15 minutes', '1h': 'last hour' });

/** A request the API did not answer with 200: its HTTP status (0: no answer) and the error's stable code. */
class ApiFailure extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** As shown on the page: `HTTP 403 FORBIDDEN: …`. */
  describe() {
    return this.status === 0 ? `${this.code}: ${this.message}` : `HTTP ${this.status} ${this.code}: ${this.message}`;
  }
}

/**
 * GETs a REST route; rejects with an ApiFailure. Errors arrive as GraphQL writes them
 * (`{ errors: [{ message, extensions: { code } }] }`, `admin-api.ts`).
 * @param {string} path @param {string | null} token @returns {Promise<unknown>}
 */
async function request(path, token) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (token) headers['authorization'] = `Bearer ${token}`;
  /** @type {Response} */
  let response;
  try {
    response = await fetch(path, { headers, cache: 'no-store' });
  } catch {
    throw new ApiFailure(0, 'NETWORK_ERROR', 'the server did not answer');
  }
  /** @type {unknown} */
  const body = await response.json().catch(() => undefined);
  if (response.ok) return body;
  const first = /** @type {{ errors?: { message?: string, extensions?: { code?: string } }[], error?: string } | undefined} */ (body);
  const error = first?.errors?.[0];
  throw new ApiFailure(response.status, error?.extensions?.code ?? 'HTTP_ERROR', error?.message ?? first?.error ?? response.statusText);
}

/** @param {string} path */
const api = (path) => request(path, sessionStorage.getItem(TOKEN_KEY));

// ---- DOM helpers --------------------------------------------------------------------------

/**
 * An element with attributes (`class`, `scope`, `datetime`…) and children (text or nodes).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag @param {Record<string, string>} [attributes] @param {Child[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) if (child !== null && child !== undefined) node.append(typeof child === 'number' ? String(child) : child);
  return node;
}

/**
 * A table: a caption, column headers, and rows whose first cell heads the row (`th scope="row"`).
 * @param {string} caption @param {string[]} columns @param {Child[][]} rows
 */
function table(caption, columns, rows) {
  const head = el('tr', {}, columns.map((column) => el('th', { scope: 'col' }, [column])));
  const body = rows.map(([first, ...rest]) => el('tr', {}, [el('th', { scope: 'row' }, [first]), ...rest.map((cell) => el('td', {}, [cell]))]));
  return el('table', {}, [el('caption', {}, [caption]), el('thead', {}, [head]), el('tbody', {}, body)]);
}

/** @param {string} text */
const note = (text) => el('p', { class: 'empty' }, [text]);

// ---- Formatting -------------------------------------------------------------------------

const wide = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const small = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 2 });
/** Two decimals, or two significant digits below 1 (3 events in an hour: 0.00083/s, not 0). @param {number} value */
const decimal = (value) => (value !== 0 && Math.abs(value) < 1 ? small : wide).format(value);
/** @param {number | null} value @param {string} [unit] */
const num = (value, unit = '') => (value === null ? 'n/a' : `${decimal(value)}${unit}`);
/** @param {number} value */
const perSecond = (value) => `${decimal(value)}/s`;
/** @param {number | null} value */
const percent = (value) => (value === null ? 'n/a' : `${decimal(value * 100)} %`);
/** In B, KiB, MiB… @param {number | null} value */
function bytes(value) {
  if (value === null) return 'n/a';
  const unit = Math.min(4, Math.floor(Math.log2(Math.max(1, Math.abs(value))) / 10));
  return `${decimal(value / 1024 ** unit)} ${['B', 'KiB', 'MiB', 'GiB', 'TiB'][unit] ?? 'B'}`;
}
/** A `<time>` for ms since the epoch or an ISO string; "—" for none. @param {number | string | null} value */
function time(value) {
  if (value === null) return '—';
  const date = new Date(value);
  return el('time', { datetime: date.toISOString() }, [date.toLocaleString()]);
}

// ---- Screens -----------------------------------------------------------------------------

/** @param {string} id */
function parts(id) {
  const section = /** @type {HTMLElement} */ (document.getElementById(id));
  const pick = (/** @type {string} */ selector) => /** @type {HTMLElement} */ (section.querySelector(selector));
  return { section, status: pick('.status'), error: pick('.error'), body: pick('.body') };
}

/**
 * Loads a screen: its error line cleared or set, its body replaced (unless the load updated it in
 * place: null) when the answer is still wanted — a later load, or a switch of screen, makes an
 * earlier answer stale. A 401 while signed in means the token expired or was revoked: back to the
 * sign-in form.
 * @param {ReturnType<typeof parts>} screen @param {() => Promise<Node[] | null>} load
 */
async function fill(screen, load) {
  const generation = ++loads;
  try {
    const nodes = await load();
    if (generation !== loads) return;
    screen.error.textContent = '';
    if (nodes !== null) screen.body.replaceChildren(...nodes);
    screen.status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (generation !== loads) return;
    const failure = error instanceof ApiFailure ? error : new ApiFailure(0, 'CLIENT_ERROR', String(error));
    if (failure.status === 401 && sessionStorage.getItem(TOKEN_KEY) !== null) {
      forget(`The token was refused (${failure.describe()}). Sign in again.`);
      return;
    }
    screen.error.textContent = failure.describe();
    screen.status.textContent = `Failed at ${new Date().toLocaleTimeString()}`;
    screen.body.replaceChildren();
  }
}
let loads = 0;

async function loadDashboard() {
  const view = /** @type {DashboardJson} */ (await api('/api/metrics/dashboard'));
  const { cluster, cluster: { webhooks } } = view;
  const instances = view.instances.length === 0
    ? note('No instance has reported yet: the first report comes within a tick (DASHBOARD_TICK_SECONDS).')
    : table('Instances', ['Instance', 'Role', 'Started', 'Reported', 'Connections', 'Subscriptions', 'Events', 'Deliveries', 'Latency p99'],
      view.instances.map(({ instance, role, startedAt, reportedAt, gone, figures }) => [
        instance, gone ? el('span', {}, [role, ' ', el('span', { class: 'badge severity-warning' }, ['gone'])]) : role,
        time(startedAt), time(reportedAt), num(figures.connections), num(figures.subscriptions),
        perSecond(figures.eventsPerSecond), perSecond(figures.deliveriesPerSecond), num(figures.latencyP99Ms, ' ms'),
      ]));
  return [
    // No instance runs the workers' jobs: said first, as every figure below it looks calm.
    ...(view.warnings ?? []).map((warning) => el('p', { class: 'badge severity-warning' }, [warning])),
    el('div', { class: 'cards' }, [
      table('Cluster', ['Figure', 'Value'], [
        ['Connections', num(cluster.connections)],
        ['Subscriptions', num(cluster.subscriptions)],
        ['Events', perSecond(cluster.eventsPerSecond)],
        ['Deliveries', perSecond(cluster.deliveriesPerSecond)],
        ['Bytes delivered', `${bytes(cluster.bytesPerSecond)}/s`],
        ['Latency p50', num(cluster.latencyP50Ms, ' ms')],
        ['Latency p99', num(cluster.latencyP99Ms, ' ms')],
        ['Resyncs', perSecond(cluster.resyncsPerSecond)],
        ['Slow-consumer closes', perSecond(cluster.slowConsumerClosesPerSecond)],
      ]),
      table('Events by source', ['Source', 'Events'], cluster.eventsPerSecondBySource.map(({ source, perSecond: rate }) => [source, perSecond(rate)])),
      table('Webhooks', ['Figure', 'Value'], [
        ['Delivered', perSecond(webhooks.deliveredPerSecond)],
        ['Failed', perSecond(webhooks.failedPerSecond)],
        ['Failure rate', percent(webhooks.failureRate)],
        // Null with no workers process reporting: unknown — not 0, nor the "n/a" of "none pending".
        ['Pending', webhooks.pending === null ? 'unknown' : num(webhooks.pending)],
        ['Oldest pending', webhooks.pending === null ? 'unknown' : num(webhooks.oldestPendingSeconds, ' s')],
      ]),
    ]),
    cluster.cdc.length === 0
      ? note('No CDC source.')
      : table('CDC sources', ['Source', 'Replication lag', 'Retained WAL', 'WAL left before max_slot_wal_keep_size'], cluster.cdc.map((cdc) => [cdc.source, bytes(cdc.lagBytes), bytes(cdc.retainedWalBytes), bytes(cdc.safeWalBytes ?? null)])),
    cluster.outboxes === null || cluster.outboxes.length === 0
      ? note(cluster.outboxes === null ? 'Outboxes unknown: no workers process reports them.' : 'No outbox.')
      : table('Outboxes', ['Outbox', 'Pending', 'Oldest pending'], cluster.outboxes.map((outbox) => [outbox.outbox, num(outbox.pending), num(outbox.oldestPendingSeconds, ' s')])),
    instances,
  ];
}

const hotForm = /** @type {HTMLFormElement} */ (document.getElementById('hot-topics-filters'));

async function loadHotTopics() {
  const form = new FormData(hotForm);
  const query = new URLSearchParams();
  for (const name of ['window', 'by', 'limit', 'tenant']) {
    const value = form.get(name);
    if (typeof value === 'string' && value.trim() !== '') query.set(name, value.trim());
  }
  const view = /** @type {HotTopicsJson} */ (await api(`/api/metrics/hot-topics?${query.toString()}`));
  const caption = `Hot topics, ${WINDOW_NAMES[view.window] ?? view.window}, by ${view.by.replace('_', ' ')}`;
  if (view.topics.length === 0) return [note(`No topic had events in the ${WINDOW_NAMES[view.window] ?? view.window}.`)];
  return [
    table(caption, ['Topic', 'Tenant', 'Events', 'Events/s', 'Deliveries', 'Deliveries/s', 'Bytes', 'Bytes/s', 'Latency p50', 'Latency p99', 'Webhook deliveries', 'Webhook failures', 'Resyncs'],
      view.topics.map((topic) => [
        topic.topic, topic.tenant ?? '—', num(topic.count), num(topic.eventsPerSecond), num(topic.deliveries), num(topic.deliveriesPerSecond),
        bytes(topic.bytes), `${bytes(topic.bytesPerSecond)}/s`, num(topic.latencyP50Ms, ' ms'), num(topic.latencyP99Ms, ' ms'),
        num(topic.webhookDeliveries), num(topic.webhookFailures), num(topic.resyncs),
      ])),
  ];
}

const alertsScreen = parts('alerts');
const alertsForm = /** @type {HTMLFormElement} */ (document.getElementById('alerts-filters'));
const alertsMore = /** @type {HTMLButtonElement} */ (document.getElementById('alerts-more'));
/** Where the next page starts ("Load more"); null: no next page. */
let alertsCursor = /** @type {string | null} */ (null);

/** @param {boolean} more: the next page, appended to the table shown */
async function loadAlerts(more) {
  const form = new FormData(alertsForm);
  const query = new URLSearchParams({ first: '50' });
  for (const name of ['status', 'severity']) {
    // None checked: every value (the route's default).
    const values = form.getAll(name).filter((value) => typeof value === 'string');
    if (values.length > 0) query.set(name, values.join(','));
  }
  if (more && alertsCursor !== null) query.set('after', alertsCursor);
  const page = /** @type {AlertsJson} */ (await api(`/api/alerts?${query.toString()}`));
  alertsCursor = page.hasNextPage ? page.endCursor : null;
  alertsMore.hidden = alertsCursor === null;
  const rows = page.alerts.map((alert) => [
    alert.rule,
    el('span', { class: `badge severity-${alert.severity}` }, [alert.severity]),
    el('span', { class: `badge state-${alert.status}` }, [alert.status]),
    alert.subject, alert.tenant ?? '—', alert.message, num(alert.value), num(alert.count),
    time(alert.firstFiredAt), time(alert.lastFiredAt),
    alert.acknowledgedAt === null ? '—' : el('span', {}, [time(alert.acknowledgedAt), alert.acknowledgedBy ? ` by ${alert.acknowledgedBy}` : '']),
    time(alert.resolvedAt),
  ]);
  const tbody = more ? alertsScreen.body.querySelector('tbody') : null;
  if (tbody) {
    // The next page: its rows appended to the table shown.
    tbody.append(...table('', [], rows).querySelectorAll('tbody > tr'));
    return null;
  }
  if (rows.length === 0) return [note('No alert matches these filters.')];
  return [table('Alerts, most recently fired first', ['Rule', 'Severity', 'State', 'Subject', 'Tenant', 'Message', 'Value', 'Count', 'First fired', 'Last fired', 'Acknowledged', 'Resolved'], rows)];
}

/** Each screen: its parts, how it loads, and whether it reloads every REFRESH_MS while shown. */
const SCREENS = /** @type {Record<string, { parts: ReturnType<typeof parts>, load: () => Promise<Node[] | null>, auto: boolean }>} */ ({
  dashboard: { parts: parts('dashboard'), load: loadDashboard, auto: true },
  'hot-topics': { parts: parts('hot-topics'), load: loadHotTopics, auto: true },
  alerts: { parts: alertsScreen, load: () => loadAlerts(false), auto: false },
});

let shown = 'dashboard';
/** @type {ReturnType<typeof setTimeout> | undefined} */
let timer;

/** Loads the screen shown now, then again every REFRESH_MS when it refreshes itself (not while the tab is hidden). */
async function refresh() {
  clearTimeout(timer);
  const screen = SCREENS[shown];
  if (!screen || document.getElementById('content')?.hidden) return;
  await fill(screen.parts, screen.load);
  if (screen.auto && !document.hidden) timer = setTimeout(() => void refresh(), REFRESH_MS);
}

/** Shows the screen the URL's fragment names (the dashboard by default); focus goes to its title. @param {boolean} focus */
function route(focus) {
  const name = location.hash.slice(1);
  shown = Object.hasOwn(SCREENS, name) ? name : 'dashboard';
  for (const [key, screen] of Object.entries(SCREENS)) screen.parts.section.hidden = key !== shown;
  for (const link of document.querySelectorAll('nav a[data-screen]')) {
    if (link.getAttribute('data-screen') === shown) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (focus) document.getElementById(`${shown}-title`)?.focus();
  void refresh();
}

// ---- Signing in --------------------------------------------------------------------------

const signIn = /** @type {HTMLElement} */ (document.getElementById('sign-in'));
const signInError = /** @type {HTMLElement} */ (document.getElementById('sign-in-error'));
const content = /** @type {HTMLElement} */ (document.getElementById('content'));
const identity = /** @type {HTMLElement} */ (document.getElementById('identity'));
const forgetButton = /** @type {HTMLButtonElement} */ (document.getElementById('forget'));
const tokenInput = /** @type {HTMLTextAreaElement} */ (document.getElementById('token'));

/** The screens, after signing in (focus to the screen's title) or at start. @param {'token' | 'development'} mode @param {boolean} focus */
function showScreens(mode, focus) {
  signIn.hidden = true;
  content.hidden = false;
  identity.hidden = false;
  identity.textContent = mode === 'token' ? 'Signed in with an admin token (kept in this tab only).' : 'Development mode: the server needs no token (every caller is the development principal).';
  forgetButton.hidden = mode !== 'token';
  route(focus);
}

/** Back to the sign-in form, the token dropped. @param {string} message */
function forget(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  loads += 1;
  for (const screen of Object.values(SCREENS)) screen.parts.body.replaceChildren();
  content.hidden = true;
  identity.hidden = true;
  forgetButton.hidden = true;
  signIn.hidden = false;
  signInError.textContent = message;
  tokenInput.value = '';
  document.getElementById('sign-in-title')?.focus();
}

/** @param {SubmitEvent} event */
async function submitToken(event) {
  event.preventDefault();
  const token = tokenInput.value.trim().replace(/^Bearer\s+/i, '');
  if (token === '') {
    signInError.textContent = 'Paste a token first.';
    return;
  }
  signInError.textContent = 'Checking the token…';
  try {
    await request(PROBE, token);
  } catch (error) {
    signInError.textContent = error instanceof ApiFailure ? `Not signed in: ${error.describe()}` : String(error);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenInput.value = '';
  signInError.textContent = '';
  showScreens('token', true);
}

async function start() {
  if (sessionStorage.getItem(TOKEN_KEY) !== null) {
    showScreens('token', false);
    return;
  }
  try {
    await request(PROBE, null);
    showScreens('development', false);
  } catch (error) {
    signIn.hidden = false;
    // 401: a token is needed — the form says so. Anything else is worth showing.
    if (!(error instanceof ApiFailure && error.status === 401)) signInError.textContent = error instanceof ApiFailure ? error.describe() : String(error);
  }
}

document.getElementById('sign-in-form')?.addEventListener('submit', (event) => void submitToken(event));
forgetButton.addEventListener('click', () => forget('Token forgotten.'));
window.addEventListener('hashchange', () => route(true));
document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(timer);
  else void refresh();
});
for (const form of [hotForm, alertsForm]) {
  form.addEventListener('submit', (event) => void (event.preventDefault(), refresh()));
  form.addEventListener('change', () => void refresh());
}
alertsMore.addEventListener('click', () => void fill(alertsScreen, () => loadAlerts(true)));

void start();
