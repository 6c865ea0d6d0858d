// One invocation: what it is, why it waits, its journal as a timeline (live while it runs), and
// the operator's actions on it.
import { badge, clear, code, confirmDialog, dl, duration, errorBox, h, invocationLink, link, section, time } from "./dom.js";
import { ADMIN, INGRESS, get, ingressUrl, lit, patch, query, shellQuote } from "./api.js";
import { navigate } from "./app.js";
import { target } from "./invocations.js";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

function base62(text) {
  let value = 0n;
  for (const c of text) value = value * 62n + BigInt(ALPHABET.indexOf(c));
  return value;
}

function bytes(value, width) {
  const out = [];
  for (let i = width - 1; i >= 0; i--) out.push(Number((value >> BigInt(8 * i)) & 0xffn));
  return out;
}

// The awakeable id of signal ``index`` of invocation ``id`` (as the SDKs build it).
export function awakeableId(id, index) {
  const raw = [...bytes(base62(id.slice(5, 16)), 8), ...bytes(base62(id.slice(16)), 16), ...bytes(BigInt(index), 4)];
  const text = btoa(String.fromCharCode(...raw)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `sign_1${text}`;
}

const ACTIONS = [
  ["Cancel", "cancel", (r) => !r.completion_result, "The handler sees a cancellation at its next await and may compensate."],
  ["Kill", "kill", (r) => !r.completion_result, "Ends it at once, without running any more of the handler."],
  ["Pause", "pause", (r) => ["running", "backing-off", "suspended"].includes(r.status), "It stops until resumed."],
  ["Resume", "resume", (r) => ["paused", "backing-off"].includes(r.status), "It runs again, with a fresh retry budget."],
  ["Restart", "restart-as-new", (r) => !!r.completion_result && r.target_service_ty !== "workflow",
    "Runs it again from its input, as a new invocation."],
  ["Purge", "purge", (r) => !!r.completion_result, "Forgets it: its result, idempotency key or workflow id go too."],
];

function actions(row, refresh) {
  return h("div", { class: "buttons actions", role: "group", "aria-label": "Actions" },
    ACTIONS.filter(([, , shown]) => shown(row)).map(([label, op, , explain]) => h("button", {
      type: "button", class: label === "Kill" || label === "Purge" ? "danger" : "",
      onclick: async () => {
        const curl = `curl -X PATCH ${ADMIN}/invocations/${row.id}/${op}`;
        if (!(await confirmDialog(`${label} this invocation?`, explain, curl))) return;
        try {
          const answer = await patch(`/invocations/${row.id}/${op}`);
          if (answer && answer.new_invocation_id) navigate(`/ui/invocations/${answer.new_invocation_id}`);
          else if (op === "purge") navigate("/ui/invocations");
          else refresh();
        } catch (error) {
          document.getElementById("inv-actions-status").replaceChildren(errorBox(error));
        }
      },
    }, label)),
    h("span", { id: "inv-actions-status", role: "status" }));
}

function describeEntry(entry, children) {
  const fields = entry.entry_json ? JSON.parse(entry.entry_json) : {};
  const kind = entry.entry_type.replace(/^(Command|Notification): /, "");
  const parts = [];
  if (entry.name) parts.push(h("strong", {}, `"${entry.name}"`));
  if (entry.invoked_target) {
    const child = children[entry.invoked_id];
    parts.push(" → ", h("span", { class: "mono" }, entry.invoked_target), " ", invocationLink(entry.invoked_id),
      child ? [" ", badge(child.status, child.completion_result, child.completion_failure)] : null);
  }
  if (entry.sleep_wakeup_at) parts.push(" until ", time(entry.sleep_wakeup_at));
  if (entry.promise_name) parts.push(` promise "${entry.promise_name}"`);
  if (fields.key && !entry.promise_name) parts.push(" ", h("code", {}, String(fields.key)));
  let payload = fields.value ?? fields.parameter ?? fields.completion_value ?? fields.result;
  if (payload && typeof payload === "object" && "content" in payload) payload = payload.content; // a Value
  if (payload !== undefined) parts.push(" ", h("code", { class: "payload" }, preview(payload)));
  if (fields.failure) parts.push(" ", h("span", { class: "bad" }, `failure ${JSON.stringify(fields.failure)}`));
  return [h("span", { class: `kind ${entry.entry_type.startsWith("Command") ? "command" : "notification"}` }, kind), " ", parts];
}

function preview(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

function timeline(journal, children) {
  if (!journal.length) return h("p", { class: "muted" }, "No journal (completed invocations keep none).");
  return h("ol", { class: "timeline", "aria-label": "Journal" }, journal.map((entry) => h("li", {
    class: entry.completed === false ? "open" : "" },
    h("span", { class: "index" }, String(entry.index)), " ", describeEntry(entry, children),
    entry.completed === false ? h("span", { class: "chip" }, "waiting") : null,
    h("details", {}, h("summary", {}, `${entry.raw_length} B`), code(JSON.stringify(JSON.parse(entry.entry_json || "{}"), null, 2))))));
}

async function why(row, journal, service) {
  const lines = [];
  const key = row.target_service_key;
  if (row.status === "pending" && key) {
    const [locks, inbox] = await Promise.all([
      query(`SELECT invocation_id FROM sys_keyed_service_status WHERE service_name = ${lit(row.target_service_name)} AND service_key = ${lit(key)}`),
      query(`SELECT id FROM sys_inbox WHERE service_name = ${lit(row.target_service_name)} AND service_key = ${lit(key)} ORDER BY sequence_number`),
    ]);
    const position = inbox.findIndex((r) => r.id === row.id);
    lines.push(h("li", {}, `Waits for the lock of ${row.target_service_name}/${key}`,
      locks.length ? [", held by ", invocationLink(locks[0].invocation_id)] : "",
      position >= 0 ? `; position ${position + 1} of ${inbox.length} in its inbox.` : "."));
  }
  if (row.status === "scheduled" || row.scheduled_start_at) {
    if (!row.completion_result && row.status === "scheduled") lines.push(h("li", {}, "Starts at ", time(row.scheduled_start_at), "."));
  }
  if (row.status === "suspended") {
    const waiting = journal.filter((e) => e.completed === false);
    lines.push(h("li", {}, "Suspended until one of these completes: ",
      waiting.length ? h("ul", {}, waiting.map((e) => h("li", {}, describeEntry(e, {}))))
        : (row.suspended_waiting_for_signals || []).some((i) => i >= 17) ? "an awakeable (below)." : "a signal."));
  }
  if (row.status === "backing-off" || row.status === "paused") {
    const policy = (service && service.retry_policy) || {};
    lines.push(h("li", {}, row.status === "paused"
      ? "Paused (by an operator, or because its retries ran out). Resume to try again."
      : `Retrying after ${row.retry_count} failed attempt(s); policy: every ${policy.initial_interval} ×${policy.exponentiation_factor}`
        + ` up to ${policy.max_interval}, ${policy.max_attempts ?? "unlimited"} attempts, then ${policy.on_max_attempts}.`));
  }
  if (row.status === "running") lines.push(h("li", {}, "An attempt is running", row.pinned_deployment_id
    ? [" on ", link(`/ui/deployments/${row.pinned_deployment_id}`, row.pinned_deployment_id)] : "", "."));
  return lines.length ? section("Why is it waiting?", h("ul", {}, lines)) : null;
}

function awakeables(row, refresh) {
  // Signal ids below 17 are the protocol's own (1: cancellation); awakeables start at 17.
  const signals = (row.suspended_waiting_for_signals || []).filter((index) => index >= 17);
  if (!signals.length) return null;
  return section("Awakeables it waits for", signals.map((index) => {
    const id = awakeableId(row.id, index);
    const value = h("input", { id: `awk-${index}`, value: '"done"', class: "mono" });
    const status = h("span", { role: "status" });
    const complete = async (how) => {
      const response = await fetch(`${INGRESS}/restate/awakeables/${id}/${how}`, {
        method: "POST", headers: { "content-type": "application/json" }, body: value.value });
      clear(status, response.ok ? `${how === "resolve" ? "Resolved" : "Rejected"}.` : `${response.status} ${await response.text()}`);
      refresh();
    };
    return h("div", { class: "awakeable" }, h("code", {}, id),
      h("label", { for: `awk-${index}` }, " Value "), value,
      h("button", { type: "button", onclick: () => complete("resolve") }, "Resolve"),
      h("button", { type: "button", onclick: () => complete("reject") }, "Reject"), status);
  }));
}

async function output(row) {
  if (!row.completion_result) return null;
  if (row.completion_failure) return section("Failure", h("p", { class: "bad" }, row.completion_failure));
  const response = await fetch(`${INGRESS}/restate/output/${row.id}`);
  return section("Output", code((await response.text()) || "(empty)"));
}

export async function page(main, context, [id]) {
  let last = "";
  const render = async () => {
    const [rows, journal] = await Promise.all([
      query(`SELECT * FROM sys_invocation WHERE id = ${lit(id)}`),
      query(`SELECT index, entry_type, name, completed, invoked_id, invoked_target, sleep_wakeup_at, promise_name,
        raw_length, entry_json FROM sys_journal WHERE id = ${lit(id)} ORDER BY index`),
    ]);
    if (!rows.length) {
      clear(main, h("h1", {}, "Invocation"), h("p", {}, `No invocation ${id} (never existed, not retained, or purged).`));
      return false;
    }
    const row = rows[0];
    const snapshot = JSON.stringify([row, journal]);
    if (snapshot === last) return !row.completion_result;
    last = snapshot;
    const callees = journal.filter((e) => e.invoked_id).map((e) => lit(e.invoked_id));
    const [children, service, reason, result] = await Promise.all([
      callees.length ? query(`SELECT id, status, completion_result, completion_failure FROM sys_invocation WHERE id IN (${callees.join(", ")})`) : [],
      get(`/services/${encodeURIComponent(row.target_service_name)}`).catch(() => null),
      why(row, journal, null),
      output(row),
    ]);
    const byId = Object.fromEntries(children.map((c) => [c.id, c]));
    const reasonWithPolicy = row.status === "backing-off" ? await why(row, journal, service) : reason;
    const ingress = await ingressUrl();
    if (!context.alive) return false;
    clear(main,
      h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/ui/invocations", "Invocations"), " › ",
        h("span", { class: "mono" }, row.id)),
      h("div", { class: "title" }, h("h1", {}, "Invocation ", target(row)),
        badge(row.status, row.completion_result, row.completion_failure)),
      actions(row, () => { last = ""; render(); }),
      h("div", { class: "grid" },
        section("Details", dl([
          ["Id", h("span", { class: "mono" }, row.id)],
          ["Target", h("span", { class: "mono" }, row.target)],
          ["Idempotency key", row.idempotency_key],
          ["Scope", row.scope],
          ["Invoked by", row.invoked_by_id ? invocationLink(row.invoked_by_id) : row.invoked_by],
          ["Deployment", row.pinned_deployment_id ? link(`/ui/deployments/${row.pinned_deployment_id}`, row.pinned_deployment_id) : ""],
          ["Retry count", row.retry_count ? String(row.retry_count) : ""],
          ["Last failure", row.last_failure ? h("span", { class: "bad" }, row.last_failure) : ""],
        ])),
        section("Timings", dl([
          ["Created", time(row.created_at)], ["Modified", time(row.modified_at)],
          ["Scheduled to start", time(row.scheduled_start_at)], ["Completed", time(row.completed_at)],
          ["Duration", row.completed_at ? duration(row.created_at, row.completed_at) : duration(row.created_at)],
          ["Retained for", row.completion_retention], ["Journal", `${row.journal_size} entries, ${row.journal_commands_size} commands`],
        ]))),
      reasonWithPolicy, awakeables(row, () => { last = ""; render(); }), result,
      section("Journal", timeline(journal, byId)),
      h("details", {}, h("summary", {}, "Copy as curl / SQL"), code(
        `curl ${ADMIN}/query -H 'accept: application/json' --json ${shellQuote(JSON.stringify({ query: `SELECT * FROM sys_journal WHERE id = '${row.id}'` }))}\n`
        + `curl ${ingress}/restate/attach/${row.id}`)));
    return !row.completion_result;
  };
  await render();
  context.every(1000, render); // live: re-rendered only when the row or the journal changed
}

