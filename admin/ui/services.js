// Services: the overview of every service, and one service's handlers and settings.
import { badge, clear, code, dl, errorBox, h, link, section, table } from "./dom.js";
import { ADMIN, get, lit, patch, query, shellQuote } from "./api.js";

const TYPES = { Service: "Service", VirtualObject: "Virtual object", Workflow: "Workflow" };

export function signature(handler) {
  const describe = (schema, fallback) => {
    if (!schema) return fallback === "none" ? "" : fallback || "";
    return schema.title || schema.type || "JSON";
  };
  return `${handler.name}(${describe(handler.input_json_schema, handler.input_description)}) → ${
    describe(handler.output_json_schema, handler.output_description) || "void"}`;
}

// In-flight invocations (from memory: fast with any number retained) per service and status.
async function inFlight(service) {
  const where = service ? ` AND target_service_name = ${lit(service)}` : "";
  const rows = await query(
    `SELECT target_service_name AS service, status, COUNT(*) AS n FROM sys_invocation
     WHERE status != 'completed'${where} GROUP BY 1, 2 ORDER BY 1, 2`);
  const counts = {};
  for (const row of rows) (counts[row.service] ||= []).push([row.status, row.n]);
  return counts;
}

function countBadges(service, counts) {
  const found = counts[service] || [];
  if (!found.length) return h("span", { class: "muted" }, "none");
  return found.map(([status, n]) =>
    link(`/ui/invocations?service=${encodeURIComponent(service)}&status=${status}`, [badge(status), ` ${n}`],
      { class: "count" }));
}

export async function list(main, context) {
  const [services, deployments, counts] = await Promise.all([get("/services"), get("/deployments"), inFlight()]);
  const uris = Object.fromEntries(deployments.deployments.map((d) => [d.id, d.uri]));
  const rows = services.services.map((s) => [
    link(`/ui/services/${encodeURIComponent(s.name)}`, s.name, { class: "strong" }),
    TYPES[s.ty] || s.ty,
    h("ul", { class: "plain" }, s.handlers.map((handler) => h("li", {},
      link(`/ui/services/${encodeURIComponent(s.name)}/handlers/${encodeURIComponent(handler.name)}`,
        signature(handler), { class: "mono", "aria-label": `Playground ${s.name}/${handler.name}` })))),
    link(`/ui/deployments/${s.deployment_id}`, uris[s.deployment_id] || s.deployment_id),
    String(s.revision),
    h("span", {}, countBadges(s.name, counts)),
  ]);
  clear(main,
    h("div", { class: "title" }, h("h1", {}, "Services"), link("/ui/deployments", "Register a deployment",
      { class: "button" })),
    services.services.length ? null
      : h("p", {}, "No services yet. ", link("/ui/deployments", "Register a deployment"), " to get started."),
    table(["Service", "Type", "Handlers (open the playground)", "Deployment", "Revision", "In flight"], rows,
      { "aria-label": "Services" }));
  context.every(5000, async () => {
    const fresh = await inFlight();
    main.querySelectorAll("tbody tr").forEach((tr, i) => {
      const service = services.services[i];
      if (service) clear(tr.lastElementChild, h("span", {}, countBadges(service.name, fresh)));
    });
  });
}

const SETTINGS = [
  ["idempotency_retention", "Idempotency retention"],
  ["journal_retention", "Journal retention"],
  ["workflow_completion_retention", "Workflow completion retention"],
  ["inactivity_timeout", "Inactivity timeout"],
  ["abort_timeout", "Abort timeout"],
];

export async function detail(main, context, [name]) {
  const [service, counts] = await Promise.all([get(`/services/${encodeURIComponent(name)}`), inFlight(name)]);
  const deployment = await get(`/deployments/${service.deployment_id}`).catch(() => null);
  const policy = service.retry_policy || {};
  const form = settingsForm(service);
  clear(main,
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/ui/", "Services"), " › ", name),
    h("div", { class: "title" }, h("h1", {}, name), h("span", { class: "chip" }, TYPES[service.ty] || service.ty)),
    service.documentation ? h("p", {}, service.documentation) : null,
    h("div", { class: "grid" },
      section("Handlers", h("ul", { class: "plain" }, service.handlers.map((handler) => h("li", {},
        link(`/ui/services/${encodeURIComponent(name)}/handlers/${encodeURIComponent(handler.name)}`,
          signature(handler), { class: "mono" }),
        handler.ty ? h("span", { class: "chip" }, handler.ty) : null,
        handler.public ? null : h("span", { class: "chip" }, "private"))))),
      section("Invocations",
        // Counting the retained ones would read every one of them: the list pages through them instead.
        dl([["In flight", h("span", {}, countBadges(name, counts))],
          ["Completed", link(`/ui/invocations?service=${encodeURIComponent(name)}&status=completed`, "retained ones")]]),
        link(`/ui/invocations?service=${encodeURIComponent(name)}`, "All invocations of this service")),
      section("Deployment", deployment ? dl([
        ["Endpoint", link(`/ui/deployments/${deployment.id}`, deployment.uri)],
        ["Revision", String(service.revision)],
        ["SDK", deployment.sdk_version || ""],
        ["Protocol", `${deployment.protocol_type}, ${deployment.http_version}`],
      ]) : h("p", { class: "muted" }, service.deployment_id)),
      section("Retry policy", dl([
        ["Initial interval", policy.initial_interval], ["Factor", String(policy.exponentiation_factor ?? "")],
        ["Max interval", policy.max_interval], ["Max attempts", String(policy.max_attempts ?? "unlimited")],
        ["On max attempts", policy.on_max_attempts], ["Lazy state", service.enable_lazy_state ? "on" : "off"],
      ]))),
    section("Settings", form));
}

function settingsForm(service) {
  const fields = SETTINGS.filter(([key]) => key in service);
  const status = h("p", { role: "status", class: "muted" });
  const publicBox = h("input", { type: "checkbox", id: "set-public", checked: service.public });
  const inputs = Object.fromEntries(fields.map(([key]) => [key, h("input", { id: `set-${key}`, value: service[key] || "" })]));
  const curl = code("");
  const body = () => {
    const changed = { public: publicBox.checked };
    for (const [key] of fields) if (inputs[key].value !== (service[key] || "")) changed[key] = inputs[key].value;
    return changed;
  };
  const showCurl = () => { curl.textContent = `curl -X PATCH ${ADMIN}/services/${service.name} --json ${shellQuote(JSON.stringify(body()))}`; };
  const form = h("form", { class: "settings", oninput: showCurl, onsubmit: async (event) => {
    event.preventDefault();
    try {
      const updated = await patch(`/services/${encodeURIComponent(service.name)}`, body());
      Object.assign(service, updated);
      clear(status, "Saved. Changes last until the service is next registered.");
    } catch (error) {
      clear(status, errorBox(error));
    }
  } },
    h("label", { for: "set-public" }, publicBox, " Public (reachable through the ingress)"),
    fields.map(([key, label]) => h("div", { class: "field" }, h("label", { for: `set-${key}` }, label), inputs[key])),
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Save settings")),
    status, h("details", {}, h("summary", {}, "Copy as curl"), curl));
  showCurl();
  return form;
}
