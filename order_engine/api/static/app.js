// The dashboard: places orders, follows the wallet's orders on /ws/orders?wallet=, shows
// an order's quotes, route and events, charts /api/stats and renders /health. No framework
// and no build step: the server sends this file as it is.

const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
// How far along an order is, so that a late message never moves a row backwards.
const RANK = { pending: 0, waiting: 1, routing: 2, building: 3, submitted: 4 };
const rank = (status) => RANK[status] ?? 5;
const ORDERS_SHOWN = 20;

const state = {
  apiKey: localStorage.getItem("oe.apiKey") ?? "",
  wallet: localStorage.getItem("oe.wallet") || randomWallet(),
  orders: new Map(), // orderId -> {order, route, quotes, events}
  selected: null,
  socket: null,
};

// --- the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? `http_${status}`;
    this.details = error?.details ?? [];
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (state.apiKey) headers["X-API-Key"] = state.apiKey;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok && path !== "/health") throw new ApiError(response.status, payload?.error);
  return payload;
}

function socketUrl(path, params) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
  return url;
}

// --- small helpers -------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const clock = (iso) => (iso ? iso.slice(11, 23) : "");
const short = (text, n = 8) => (text && text.length > 2 * n ? `${text.slice(0, n)}…${text.slice(-4)}` : text ?? "");

function randomWallet() {
  const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  bytes[0] ||= 1; // a leading zero byte would encode as "1" and still decode to 32 bytes
  let number = bytes.reduce((n, b) => n * 256n + BigInt(b), 0n);
  let text = "";
  while (number > 0n) {
    text = alphabet[Number(number % 58n)] + text;
    number /= 58n;
  }
  return text;
}

function showBanner(message) {
  const banner = $("#banner");
  banner.textContent = message ?? "";
  banner.hidden = !message;
}

function apiKeyTrouble(error) {
  if (error instanceof ApiError && error.status === 401) {
    showBanner("The server wants an API key: enter it above (it is sent as X-API-Key).");
    return true;
  }
  return false;
}

// --- the route, drawn ----------------------------------------------------------------

// Tokens left to right in path order; legs between the same two tokens (a split) are
// drawn as arcs above and below the line, each with its DEX and share of the input.
function drawRoute(route, { width = 520, height = 120, compact = false } = {}) {
  const root = svg("svg", {
    class: compact ? "route compact" : "route",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": `${route.kind} route`,
    "data-kind": route.kind,
  });
  const tokens = [route.legs[0].inputToken];
  for (const leg of route.legs) if (tokens.at(-1) !== leg.outputToken) tokens.push(leg.outputToken);
  const pad = compact ? 22 : 40;
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(tokens.length - 1, 1);
  const y = height / 2;
  const radius = compact ? 14 : 22;
  const hops = new Map();
  for (const leg of route.legs) {
    const key = `${leg.inputToken}>${leg.outputToken}`;
    hops.set(key, [...(hops.get(key) ?? []), leg]);
  }
  for (const legs of hops.values()) {
    const from = x(tokens.indexOf(legs[0].inputToken));
    const to = x(tokens.indexOf(legs[0].outputToken));
    const total = legs.reduce((sum, leg) => sum + Number(leg.inputAmount), 0);
    legs.forEach((leg, i) => {
      const bend = legs.length === 1 ? 0 : (i === 0 ? -1 : 1) * (compact ? 10 : 38);
      const middle = (from + to) / 2;
      root.append(
        svg("path", {
          class: `leg ${leg.dex}`,
          d: `M ${from + radius} ${y} Q ${middle} ${y + 2 * bend} ${to - radius} ${y}`,
          "data-dex": leg.dex,
        }),
      );
      const share = legs.length > 1 ? ` ${Math.round((100 * Number(leg.inputAmount)) / total)}%` : "";
      const label = compact ? `${leg.dex.slice(0, 3)}${share}` : `${leg.dex}${share}`;
      // Above a straight or upper leg, below a lower one.
      const labelY = bend > 0 ? y + bend + (compact ? 9 : 14) : y + bend - 4;
      root.append(svg("text", { class: leg.dex, x: middle, y: labelY, "text-anchor": "middle" }, label));
    });
  }
  tokens.forEach((token, i) => {
    root.append(svg("circle", { class: "token", cx: x(i), cy: y, r: radius }));
    root.append(svg("text", { x: x(i), y: y + 4, "text-anchor": "middle" }, compact ? token.slice(0, 4) : token));
  });
  return root;
}

// --- the wallet's orders -------------------------------------------------------------

function entry(orderId) {
  if (!state.orders.has(orderId)) state.orders.set(orderId, { order: null, route: null, quotes: [], events: [] });
  return state.orders.get(orderId);
}

// The order as last read, moved on by every event at least as far along: an answer that
// arrives after later events (a POST's pending, a GET racing the socket) never wins.
function fold(known) {
  for (const event of known.events) {
    const order = known.order;
    if (!order || rank(event.status) < rank(order.status)) continue;
    const data = event.data ?? {};
    known.order = {
      ...order,
      status: event.status,
      dex: data.dex ?? order.dex,
      txHash: data.txHash ?? order.txHash,
      amountOut: data.amountOut ?? order.amountOut,
      executedPrice: data.executedPrice ?? order.executedPrice,
      failureCode: event.status === "failed" ? data.code : order.failureCode,
      failureReason: event.status === "failed" ? data.reason : order.failureReason,
      updatedAt: event.timestamp,
    };
  }
}

function remember(order) {
  const known = entry(order.orderId);
  if (!known.order || rank(order.status) >= rank(known.order.status)) known.order = order;
  fold(known);
  render(order.orderId);
}

// A status message, from the socket or from /events.
function apply(message) {
  const known = entry(message.orderId);
  if (known.events.some((e) => e.seq === message.seq)) return;
  known.events.push(message);
  known.events.sort((a, b) => a.seq - b.seq);
  if (message.data?.route) {
    known.route = message.data.route;
    known.quotes = message.data.quotes ?? [];
  }
  if (known.order) fold(known);
  else refreshOrder(message.orderId);
  render(message.orderId);
}

async function refreshOrder(orderId) {
  try {
    remember(await api(`/api/orders/${orderId}`));
  } catch (error) {
    apiKeyTrouble(error);
  }
}

async function loadEvents(orderId) {
  const { events } = await api(`/api/orders/${orderId}/events`);
  events.forEach(apply);
}

function render(orderId) {
  const { order, route } = state.orders.get(orderId);
  if (!order) return;
  const rows = $("#order-rows");
  let row = rows.querySelector(`tr[data-order-id="${orderId}"]`);
  const cells = [
    el("td", { class: "num" }, clock(order.createdAt)),
    el("td", {}, order.type),
    el("td", { class: "num" }, `${order.inputAmount} ${order.inputToken} → ${order.outputToken}`),
    el("td", { class: `status ${order.status}` }, order.status),
    el("td", {}, order.dex ?? ""),
    el("td", { class: "num" }, order.amountOut ? `${order.amountOut} ${order.outputToken}` : order.failureCode ?? ""),
    el("td", { class: "route-cell" }, route ? drawRoute(route, { width: 200, height: 48, compact: true }) : ""),
  ];
  if (!row) {
    row = el("tr", { "data-order-id": orderId });
    row.addEventListener("click", () => select(orderId));
    const rowsByTime = [...rows.children];
    const later = rowsByTime.find((r) => state.orders.get(r.dataset.orderId).order.createdAt < order.createdAt);
    rows.insertBefore(row, later ?? null);
  }
  row.replaceChildren(...cells);
  row.dataset.status = order.status;
  row.classList.toggle("selected", state.selected === orderId);
  while (rows.children.length > ORDERS_SHOWN) rows.lastElementChild.remove();
  $("#no-orders").hidden = rows.children.length > 0;
  if (state.selected === orderId) renderDetail();
}

async function loadWallet() {
  state.orders.clear();
  $("#order-rows").replaceChildren();
  $("#no-orders").hidden = false;
  try {
    const { orders } = await api(`/api/orders/user/${state.wallet}?limit=${ORDERS_SHOWN}`);
    orders.forEach(remember);
    showBanner(null);
    await Promise.all(orders.map((o) => loadEvents(o.orderId).catch(() => {})));
  } catch (error) {
    if (!apiKeyTrouble(error)) showBanner(`Could not list the wallet's orders: ${error.message}`);
  }
}

// The wallet socket has no replay: it is opened before the listing is read, and what it
// delivers meanwhile is folded in by seq, so nothing falls between the two.
function connect(delay = 500) {
  state.socket?.close();
  const socket = new WebSocket(socketUrl("/ws/orders", { wallet: state.wallet, apiKey: state.apiKey }));
  state.socket = socket;
  const status = $("#socket-state");
  socket.onopen = () => {
    status.textContent = "socket: live";
    delay = 500;
    loadWallet();
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "status") apply(message);
    else if (message.type === "error") showBanner(`${message.code}: ${message.message}`);
  };
  socket.onclose = (event) => {
    if (state.socket !== socket) return;
    if (event.code === 4400) {
      status.textContent = "socket: refused, see above";
      return; // a malformed wallet stays malformed: no point in asking again
    }
    status.textContent = `socket: closed (${event.code}), reconnecting`;
    setTimeout(() => state.socket === socket && connect(Math.min(delay * 2, 10000)), delay);
  };
}

// --- an order's detail ---------------------------------------------------------------

async function select(orderId) {
  state.selected = orderId;
  for (const row of document.querySelectorAll("#order-rows tr")) row.classList.toggle("selected", row.dataset.orderId === orderId);
  $("#detail").hidden = false;
  renderDetail();
  try {
    await Promise.all([refreshOrder(orderId), loadEvents(orderId)]);
  } catch (error) {
    apiKeyTrouble(error);
  }
  renderDetail();
}

function describe(event) {
  const d = event.data ?? {};
  if (d.retryInMs !== undefined) return `attempt ${d.attempt} in ${d.retryInMs} ms after ${d.code}: ${d.reason}`;
  switch (event.status) {
    case "routing":
      return `${d.route?.kind}${d.route?.kind === "direct" ? ` on ${d.dex}` : ""} route paying ${d.route?.amountOut}; ${d.quotes?.length ?? 0} direct quotes`;
    case "building":
      return `${d.dex}, at least ${d.minAmountOut}`;
    case "submitted":
      return d.txHash ? `tx ${short(d.txHash)}${d.attempt ? `, attempt ${d.attempt}` : ""}` : "";
    case "confirmed":
      return `${d.amountOut} at ${d.executedPrice}, tx ${short(d.txHash)}`;
    case "failed":
      return `${d.code}: ${d.reason}`;
    case "waiting": {
      const trigger = d.token ? `a pool of ${d.token}` : `${d.limitPrice} or better (now ${d.price ?? "no route"})`;
      return `rests until ${trigger}${d.token && d.limitPrice ? ` at ${d.limitPrice} or better` : ""}, by ${d.expiresAt}`;
    }
    case "expired":
      return `its deadline ${d.expiresAt} passed`;
    default:
      return d.reason ?? "";
  }
}

function renderDetail() {
  const known = state.orders.get(state.selected);
  if (!known?.order) return;
  const { order, route, quotes, events } = known;
  $("#detail-id").textContent = order.orderId;
  const fields = [
    ["status", order.status], ["type", order.type], ["input", `${order.inputAmount} ${order.inputToken}`],
    ["output", order.outputToken], ["slippage", `${order.slippageBps} bps`], ["dex", order.dex],
    ["quoted", order.quotedAmountOut], ["minimum", order.minAmountOut], ["received", order.amountOut],
    ["price", order.executedPrice], ["attempts", order.attempts], ["tx", order.txHash],
    ["limit price", order.limitPrice], ["expires", order.expiresAt], ["failure", order.failureReason],
    ["created", order.createdAt],
  ];
  $("#detail-fields").replaceChildren(
    ...fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value === null || value === undefined ? "–" : String(value))]),
  );
  $("#detail-route").replaceChildren(route ? drawRoute(route) : "not routed yet");
  const best = quotes.reduce((top, q) => (top && Number(top.amountOut) >= Number(q.amountOut) ? top : q), null);
  $("#detail-quotes tbody").replaceChildren(
    ...quotes.map((q) =>
      el("tr", q === best ? { class: "best" } : {},
        el("td", {}, q.dex), el("td", { class: "num" }, q.amountOut), el("td", { class: "num" }, q.price),
        el("td", { class: "num" }, String(q.feeBps)), el("td", { class: "num" }, q.priceImpactBps)),
    ),
  );
  $("#detail-events").replaceChildren(
    ...events.map((e) =>
      el("li", { value: e.seq, "data-status": e.status },
        el("time", { datetime: e.timestamp }, clock(e.timestamp)),
        el("span", { class: `status ${e.status}` }, e.status), " ", describe(e)),
    ),
  );
}

// --- placing an order ----------------------------------------------------------------

function formBody(form) {
  const value = (name) => form.elements[name].value.trim();
  const body = {
    userWallet: state.wallet,
    type: value("type"),
    inputToken: value("inputToken"),
    outputToken: value("outputToken"),
    inputAmount: value("inputAmount"),
  };
  if (value("slippageBps")) body.slippageBps = Number(value("slippageBps"));
  if (body.type !== "market" && value("limitPrice")) body.limitPrice = value("limitPrice");
  if (body.type !== "market" && value("expiresAt")) body.expiresAt = new Date(value("expiresAt")).toISOString();
  return body;
}

function showFormError(form, error) {
  const box = $("#form-error");
  for (const input of document.querySelectorAll(".invalid")) input.classList.remove("invalid");
  if (!error) {
    box.hidden = true;
    return;
  }
  const details = error.details.map((d) => {
    (d.field === "userWallet" ? $("#wallet") : form.elements[d.field])?.classList.add("invalid");
    return el("li", {}, el("b", {}, d.field), ` ${d.message}`);
  });
  box.replaceChildren(
    el("span", {}, `${error.code}: `),
    el("span", {}, details.length ? "the server refused the order" : error.message),
    details.length ? el("ul", {}, ...details) : null,
  );
  box.hidden = false;
}

async function placeOrder(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const order = await api("/api/orders/execute", { method: "POST", body: formBody(form) });
    showFormError(form, null);
    remember(order);
  } catch (error) {
    if (!apiKeyTrouble(error)) showFormError(form, error instanceof ApiError ? error : new ApiError(0, { message: error.message }));
  } finally {
    button.disabled = false;
  }
}

function showTypeFields(form) {
  const type = form.elements.type.value;
  for (const label of form.querySelectorAll("[data-for]")) label.hidden = !label.dataset.for.split(" ").includes(type);
}

async function loadTokens(form) {
  try {
    const { tokens } = await api("/api/tokens");
    for (const [name, initial] of [["inputToken", "SOL"], ["outputToken", "USDC"]]) {
      const select = form.elements[name];
      select.replaceChildren(...tokens.map((t) => el("option", { value: t.symbol }, t.symbol)));
      select.value = initial;
    }
  } catch (error) {
    apiKeyTrouble(error);
  }
}

// --- health and charts ---------------------------------------------------------------

const words = (key) => key.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`);

// Whatever /health reports: a string (or an object with a status) is a component, a
// number a gauge; queueDepth is the queue's, which is unknown while Redis is down.
async function pollHealth() {
  let report;
  try {
    report = await api("/health");
  } catch {
    report = { status: "unreachable" };
  }
  const pills = Object.entries(report ?? {}).map(([key, value]) => {
    if (key === "queueDepth") {
      const known = typeof value === "number";
      return el("li", { class: `pill ${known ? "ok" : "unknown"}`, "data-component": "queue" }, `queue ${known ? value : "unknown"}`);
    }
    const status = typeof value === "object" && value !== null ? value.status : value;
    if (typeof status === "string") {
      const label = key === "status" ? `engine ${status}` : `${words(key)} ${status}`;
      return el("li", { class: `pill ${status === "ok" ? "ok" : "down"}`, "data-component": key }, label);
    }
    return el("li", { class: "pill", "data-gauge": key }, `${words(key)} ${value}`);
  });
  $("#health").replaceChildren(...pills);
}

// A line a series; with `dots`, a dot on each value too, since a second without a
// confirmation has no latency and leaves a gap.
function drawChart(target, seconds, series, { dots = false } = {}) {
  // Drawn at the chart's own size, so that text and dots keep their shape.
  const width = target.clientWidth || 360;
  const height = target.clientHeight || 110;
  target.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const top = 16;
  const right = 6;
  const values = series.flatMap(({ pick }) => seconds.map(pick)).filter((v) => v !== null);
  const max = Math.max(1, ...values);
  const x = (i) => (i * (width - right)) / Math.max(seconds.length - 1, 1);
  const y = (v) => height - 4 - ((height - top - 4) * v) / max;
  const lines = series.flatMap(({ name, pick }) => {
    const points = seconds.map((s, i) => [x(i), pick(s)]).filter(([, v]) => v !== null).map(([px, v]) => [px, y(v)]);
    const line = svg("polyline", { class: name, points: points.map((p) => p.join(",")).join(" ") });
    return dots ? [line, ...points.map(([cx, cy]) => svg("circle", { class: name, cx, cy, r: 2 }))] : [line];
  });
  const latest = series.map(({ name, pick }) => {
    const last = [...seconds].reverse().map(pick).find((v) => v !== null);
    return `${name} ${last === undefined ? "–" : Math.round(last * 10) / 10}`;
  });
  target.replaceChildren(
    ...lines,
    svg("text", { x: 4, y: 11 }, `max ${Math.round(max * 10) / 10}`),
    svg("text", { x: width - 4, y: 11, "text-anchor": "end" }, `now: ${latest.join(", ")}`),
  );
}

async function pollStats() {
  try {
    const { seconds } = await api("/api/stats");
    drawChart($("#chart-rate"), seconds, [
      { name: "accepted", pick: (s) => s.accepted },
      { name: "confirmed", pick: (s) => s.confirmed },
      { name: "failed", pick: (s) => s.failed },
    ]);
    drawChart($("#chart-latency"), seconds, [
      { name: "p50", pick: (s) => s.latencyP50Ms },
      { name: "p90", pick: (s) => s.latencyP90Ms },
    ], { dots: true });
  } catch (error) {
    apiKeyTrouble(error);
  }
}

// --- start ---------------------------------------------------------------------------

function start() {
  const form = $("#order-form");
  const wallet = $("#wallet");
  const apiKey = $("#api-key");
  wallet.value = state.wallet;
  apiKey.value = state.apiKey;
  localStorage.setItem("oe.wallet", state.wallet);

  const changeWallet = (value) => {
    state.wallet = value.trim();
    wallet.value = state.wallet;
    localStorage.setItem("oe.wallet", state.wallet);
    state.selected = null;
    $("#detail").hidden = true;
    connect();
  };
  wallet.addEventListener("change", () => changeWallet(wallet.value));
  $("#new-wallet").addEventListener("click", () => changeWallet(randomWallet()));
  apiKey.addEventListener("change", () => {
    state.apiKey = apiKey.value.trim();
    localStorage.setItem("oe.apiKey", state.apiKey);
    showBanner(null);
    loadTokens(form);
    connect();
  });
  $("#close-detail").addEventListener("click", () => {
    state.selected = null;
    $("#detail").hidden = true;
    for (const row of document.querySelectorAll("#order-rows tr.selected")) row.classList.remove("selected");
  });
  form.addEventListener("submit", placeOrder);
  form.elements.type.addEventListener("change", () => showTypeFields(form));
  showTypeFields(form);
  loadTokens(form);
  connect();
  pollHealth();
  pollStats();
  setInterval(pollHealth, 3000);
  setInterval(pollStats, 1000);
}

start();
