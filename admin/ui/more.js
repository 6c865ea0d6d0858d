// Pages beyond Restate's UI: timers, the Dapr side, a SQL console, server health with a live
// invocation rate.
import { badge, clear, code, errorBox, h, invocationLink, section, table, time } from "./dom.js";
import { get, lit, query } from "./api.js";

export async function timers(main, context) {
  const [delayed, sleeps] = await Promise.all([
    query(`SELECT id, target, scheduled_start_at FROM sys_invocation WHERE status = 'scheduled'
      ORDER BY scheduled_start_at LIMIT 500`),
    query(`SELECT id, index, name, sleep_wakeup_at FROM sys_journal WHERE entry_type = 'Command: Sleep'
      AND completed = false ORDER BY sleep_wakeup_at LIMIT 500`),
  ]);
  const rows = [
    ...delayed.map((r) => [r.scheduled_start_at, "delayed send", invocationLink(r.id), r.target]),
    ...sleeps.map((r) => [r.sleep_wakeup_at, `sleep${r.name ? ` "${r.name}"` : ""} (entry ${r.index})`, invocationLink(r.id), ""]),
  ].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([at, ...rest]) => [time(at), ...rest]);
  clear(main, h("h1", {}, "Timers"),
    h("p", { class: "muted" }, "Durable sleeps and delayed sends, in wake-up order."),
    table(["Wakes up", "What", "Invocation", "Target"], rows, { "aria-label": "Timers" }));
}

export async function dapr(main) {
  const [{ apps }, actors] = await Promise.all([
    get("/dapr/apps"),
    query(`SELECT service_name, service_key, COUNT(*) AS entries FROM state
      WHERE starts_with(service_name, 'dapr-actor:') GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 500`),
  ]);
  clear(main, h("h1", {}, "Dapr"),
    section("Apps and HTTP endpoints", table(["App id", "Kind", "Address", "Actor types"], apps.map((a) => [
      a.app_id, a.kind, a.uri, (a.actor_types || []).join(", ")]), { "aria-label": "Dapr apps" })),
    section("Actors with state", table(["Actor type", "Actor id", "State entries"], actors.map((r) => [
      r.service_name.replace(/^dapr-actor:/, ""), r.service_key, String(r.entries)]), { "aria-label": "Actors" })));
}

export async function sql(main, context, args, params) {
  const editor = h("textarea", { id: "sql-text", rows: 5, class: "mono", spellcheck: "false" },
    params.get("query") || "SELECT target_service_name, status, COUNT(*) AS n FROM sys_invocation\nWHERE status != 'completed' GROUP BY 1, 2");
  const result = h("div", { role: "status" });
  const run = async () => {
    clear(result, h("p", { class: "muted" }, "Running…"));
    const started = performance.now();
    try {
      const rows = await query(editor.value);
      const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      const cell = (v) => (typeof v === "string" && v.startsWith("inv_1") ? invocationLink(v)
        : v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
      clear(result, h("p", { class: "muted" }, `${rows.length} rows in ${Math.round(performance.now() - started)} ms`),
        table(names, rows.map((r) => names.map((n) => cell(r[n]))), { "aria-label": "Results" }));
    } catch (error) {
      clear(result, errorBox(error));
    }
  };
  clear(main, h("h1", {}, "SQL"),
    h("p", { class: "muted" }, "Tables: sys_invocation, sys_invocation_status, sys_invocation_state, sys_journal,",
      " sys_journal_events, sys_inbox, sys_keyed_service_status, sys_promise, state, sys_service, sys_deployment,",
      " sys_rules, sys_user_limits."),
    h("form", { onsubmit: (event) => { event.preventDefault(); run(); } },
      h("div", { class: "field" }, h("label", { for: "sql-text" }, "SQL query"), editor),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Run query"))),
    result);
  if (params.get("query")) run();
}

export async function health(main, context) {
  const version = await get("/version");
  const counts = h("div");
  const chart = h("div", { class: "chart", role: "img", "aria-label": "Invocations created per second" });
  const rates = [];
  const refreshCounts = async () => {
    const rows = await query("SELECT status, COUNT(*) AS n FROM sys_invocation WHERE status != 'completed' GROUP BY 1 ORDER BY 1");
    clear(counts, rows.length ? rows.map((r) => h("span", { class: "count" }, badge(r.status), ` ${r.n}`))
      : h("span", { class: "muted" }, "nothing in flight"));
  };
  const sample = async () => {
    const now = Date.now();
    const from = new Date(now - 2000).toISOString();
    const rows = await query(`SELECT COUNT(*) AS n FROM sys_invocation WHERE created_at >= ${lit(from)}
      AND created_at < ${lit(new Date(now).toISOString())}`);
    rates.push(rows[0].n / 2);
    if (rates.length > 60) rates.shift();
    drawChart(chart, rates);
  };
  clear(main, h("h1", {}, "Health"),
    section("Server", code(JSON.stringify(version, null, 2))),
    section("In flight", counts),
    section("Invocations created per second (last 2 minutes)", chart));
  await Promise.all([refreshCounts(), sample()]);
  context.every(2000, async () => { await Promise.all([refreshCounts(), sample()]); });
}

function drawChart(chart, rates) {
  const width = 600, height = 120, max = Math.max(1, ...rates);
  const points = rates.map((r, i) => `${(i / 59) * width},${height - (r / max) * (height - 10)}`).join(" ");
  chart.innerHTML = `<svg viewBox="0 0 ${width} ${height}" width="100%" height="${height}" aria-hidden="true">`
    + `<polyline fill="none" stroke="currentColor" stroke-width="2" points="${points}"/></svg>`
    + `<p class="muted">now ${rates.at(-1)}/s, peak ${max}/s</p>`;
}

