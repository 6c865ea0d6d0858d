// The invocations list: filters in the URL, newest first, 50 a page. Every filter here is one
// the server pushes into its index scans, so a page stays fast with a million retained.
import { badge, clear, h, invocationLink, link, table, time } from "./dom.js";
import { get, lit, query } from "./api.js";
import { navigate } from "./app.js";

const PAGE = 50;
export const STATUSES = ["unfinished", "pending", "scheduled", "running", "backing-off", "suspended", "paused",
  "completed", "succeeded", "failed", "killed", "cancelled"];
const COLUMNS = "id, target, target_service_name, target_service_key, target_handler_name, status, created_at,"
  + " modified_at, completion_result, completion_failure, retry_count, pinned_deployment_id, idempotency_key";

export function conditions(params) {
  const where = [];
  const equal = (column, name) => params.get(name) && where.push(`${column} = ${lit(params.get(name))}`);
  equal("id", "id");
  equal("target_service_name", "service");
  equal("target_handler_name", "handler");
  equal("target_service_key", "key");
  equal("pinned_deployment_id", "deployment");
  const status = params.get("status");
  if (status === "unfinished") where.push("status != 'completed'");
  else if (status === "completed") where.push("status = 'completed'");
  else if (status === "succeeded") where.push("completion_result = 'success'");
  else if (status === "failed") where.push("completion_result = 'failure'");
  else if (status === "killed") where.push("completion_result = 'failure'", "completion_failure = '[409] killed'");
  else if (status === "cancelled") where.push("completion_result = 'failure'", "completion_failure = '[409] cancelled'");
  else if (status) where.push(`status = ${lit(status)}`);
  const moment = (name) => new Date(params.get(name)).toISOString();
  if (params.get("from")) where.push(`created_at >= ${lit(moment("from"))}`);
  if (params.get("to")) where.push(`created_at < ${lit(moment("to"))}`);
  return where;
}

// Pages go back in time from "before" (the creation time of the last row shown), skipping the
// rows at that very time already shown: each page costs the same however deep it is.
export function listQuery(params) {
  const where = conditions(params);
  if (params.get("before")) where.push(`created_at <= ${lit(params.get("before"))}`);
  const skip = Number(params.get("skip") || 0);
  return `SELECT ${COLUMNS} FROM sys_invocation${where.length ? ` WHERE ${where.join(" AND ")}` : ""}`
    + ` ORDER BY created_at DESC, id DESC LIMIT ${PAGE + 1}${skip ? ` OFFSET ${skip}` : ""}`;
}

function olderPage(params, shown) {
  const last = shown[shown.length - 1].created_at;
  let skip = shown.filter((row) => row.created_at === last).length;
  if (params.get("before") === last) skip += Number(params.get("skip") || 0);
  const next = new URLSearchParams(params);
  next.set("before", last);
  next.set("skip", String(skip));
  return `/ui/invocations?${next}`;
}

export function target(row) {
  const service = encodeURIComponent(row.target_service_name);
  return h("span", { class: "target" },
    link(`/ui/services/${service}`, row.target_service_name),
    row.target_service_key ? ["/", link(`/ui/invocations?service=${service}&key=${encodeURIComponent(row.target_service_key)}`,
      row.target_service_key)] : null,
    "/", link(`/ui/services/${service}/handlers/${encodeURIComponent(row.target_handler_name)}`, row.target_handler_name));
}

function filters(params, services) {
  const input = (name, label, attrs = {}) => h("div", { class: "field" },
    h("label", { for: `f-${name}` }, label), h("input", { id: `f-${name}`, name, value: params.get(name) || "", ...attrs }));
  const select = (name, label, options) => h("div", { class: "field" }, h("label", { for: `f-${name}` }, label),
    h("select", { id: `f-${name}`, name }, h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: params.get(name) === o }, o))));
  return h("form", { class: "filters", role: "search", "aria-label": "Filter invocations", onsubmit: (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [name, value] of new FormData(event.target)) if (value) chosen.set(name, value);
    navigate(`/ui/invocations${chosen.size ? `?${chosen}` : ""}`);
  } },
    select("service", "Service", services),
    input("handler", "Handler"), input("key", "Key"),
    select("status", "Status", STATUSES),
    input("deployment", "Deployment"),
    input("from", "Created from", { type: "datetime-local", step: 1 }),
    input("to", "Created before", { type: "datetime-local", step: 1 }),
    input("id", "Invocation id", { class: "mono" }),
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Filter"),
      link("/ui/invocations", "Reset", { class: "button" })));
}

export async function list(main, context, args, params) {
  const [services, rows] = await Promise.all([get("/services"), query(listQuery(params))]);
  const more = rows.length > PAGE;
  const shown = rows.slice(0, PAGE);
  const newest = new URLSearchParams(params);
  newest.delete("before");
  newest.delete("skip");
  clear(main,
    h("div", { class: "title" }, h("h1", {}, "Invocations"),
      h("button", { type: "button", onclick: () => navigate(location.pathname + location.search, true) }, "Refresh")),
    filters(params, services.services.map((s) => s.name)),
    table(["Id", "Target", "Status", "Created", "Modified", "Idempotency key"], shown.map((row) => [
      invocationLink(row.id), target(row), badge(row.status, row.completion_result, row.completion_failure),
      time(row.created_at), time(row.modified_at), row.idempotency_key || "",
    ]), { "aria-label": "Invocations" }),
    h("nav", { class: "pager", "aria-label": "Pages" },
      h("span", { class: "muted" }, shown.length ? `${shown.length} shown` : "none"),
      params.get("before") ? link(`/ui/invocations?${newest}`, "Newest", { class: "button" }) : null,
      more ? link(olderPage(params, shown), "Older", { class: "button" }) : null));
}

