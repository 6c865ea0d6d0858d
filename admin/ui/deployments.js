// Deployments: list, register (dry run first), details, removal.
import { clear, code, confirmDialog, dl, errorBox, h, link, section, table, time } from "./dom.js";
import { ADMIN, del, get, post, shellQuote } from "./api.js";
import { navigate } from "./app.js";
import { signature } from "./services.js";

export async function list(main, context, args, params) {
  const { deployments } = await get("/deployments");
  const registered = params.get("registered");
  const rows = deployments.map((d) => [
    link(`/ui/deployments/${d.id}`, d.uri), h("span", { class: "mono" }, d.id),
    d.services.map((s) => link(`/ui/services/${encodeURIComponent(s.name)}`, `${s.name} (rev. ${s.revision})`))
      .flatMap((el, i) => (i ? [", ", el] : [el])),
    time(d.created_at), removeButton(d),
  ]);
  clear(main, h("h1", {}, "Deployments"),
    registered ? h("p", { role: "status", class: "ok" }, `Registered ${registered}.`) : null, registerForm(),
    table(["Endpoint", "Id", "Services", "Registered", ""], rows, { "aria-label": "Deployments" }));
}

function removeButton(deployment) {
  return h("button", { type: "button", class: "danger", onclick: async () => {
    const sure = await confirmDialog(`Remove ${deployment.uri}?`,
      "Its services are removed with it; invocations in flight on it may fail.",
      `curl -X DELETE '${ADMIN}/deployments/${deployment.id}?force=true'`);
    if (!sure) return;
    await del(`/deployments/${deployment.id}?force=true`);
    navigate("/ui/deployments", true);
  } }, "Remove");
}

function registerForm() {
  const uri = h("input", { id: "reg-uri", type: "url", required: true, placeholder: "http://localhost:9080" });
  const http11 = h("input", { id: "reg-http11", type: "checkbox" });
  const force = h("input", { id: "reg-force", type: "checkbox" });
  const headers = h("textarea", { id: "reg-headers", rows: 2, placeholder: '{"authorization": "Bearer …"}' });
  const result = h("div", { role: "status" });
  const body = (dryRun) => {
    const extra = headers.value.trim() ? JSON.parse(headers.value) : undefined;
    return { uri: uri.value, use_http_11: http11.checked, force: force.checked, dry_run: dryRun,
      ...(extra ? { additional_headers: extra } : {}) };
  };
  const submit = async (dryRun) => {
    clear(result, h("p", { class: "muted" }, dryRun ? "Discovering…" : "Registering…"));
    try {
      const answer = await post("/deployments", body(dryRun));
      const services = (answer.services || []).map((s) => h("li", {}, h("strong", {}, s.name),
        ` (${s.ty}, rev. ${s.revision}): `, (s.handlers || []).map((hd) => h("code", {}, signature(hd)))
          .flatMap((el, i) => (i ? [", ", el] : [el]))));
      clear(result,
        h("p", {}, dryRun ? "Dry run: these services would be registered." : `Registered ${answer.id}.`),
        h("ul", {}, services),
        h("details", {}, h("summary", {}, "Copy as curl"),
          code(`curl ${ADMIN}/deployments --json ${shellQuote(JSON.stringify(body(dryRun)))}`)));
      if (!dryRun) navigate(`/ui/deployments?registered=${answer.id}`, true);
    } catch (error) {
      clear(result, errorBox(error));
    }
  };
  return section("Register a deployment",
    h("form", { onsubmit: (event) => { event.preventDefault(); submit(false); } },
      h("div", { class: "field" }, h("label", { for: "reg-uri" }, "Deployment URI"), uri),
      h("label", { for: "reg-http11" }, http11, " Use HTTP/1.1 (request/response)"),
      h("label", { for: "reg-force" }, force, " Force (replace a deployment at the same URI)"),
      h("div", { class: "field" }, h("label", { for: "reg-headers" }, "Additional headers (JSON)"), headers),
      h("div", { class: "buttons" },
        h("button", { type: "button", onclick: () => uri.reportValidity() && submit(true) }, "Dry run"),
        h("button", { type: "submit", class: "primary" }, "Register"))),
    result);
}

export async function detail(main, context, [id]) {
  const d = await get(`/deployments/${id}`);
  clear(main,
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/ui/deployments", "Deployments"), " › ", d.id),
    h("div", { class: "title" }, h("h1", {}, d.uri), removeButton(d)),
    section("Deployment", dl([
      ["Id", h("span", { class: "mono" }, d.id)], ["Endpoint", d.uri], ["Registered", time(d.created_at)],
      ["Protocol", d.protocol_type], ["HTTP", d.http_version],
      ["Service protocol versions", `${d.min_protocol_version} – ${d.max_protocol_version}`],
      ["SDK", d.sdk_version || "unknown"],
      ["Additional headers", Object.keys(d.additional_headers || {}).join(", ")],
    ])),
    section("Services", h("ul", { class: "plain" }, d.services.map((s) => h("li", {},
      link(`/ui/services/${encodeURIComponent(s.name)}`, s.name), ` ${s.ty}, rev. ${s.revision}`,
      h("ul", {}, (s.handlers || []).map((hd) => h("li", {},
        link(`/ui/services/${encodeURIComponent(s.name)}/handlers/${encodeURIComponent(hd.name)}`, signature(hd),
          { class: "mono" })))))))));
}
