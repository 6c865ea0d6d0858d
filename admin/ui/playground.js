// The playground: call or send one handler, prefilled from its JSON schema, and see the answer.
import { clear, code, dl, h, invocationLink, link, section } from "./dom.js";
import { INGRESS, get, ingressUrl, shellQuote } from "./api.js";
import { signature } from "./services.js";

// An example value for a JSON schema: what the request body editor starts with.
export function example(schema, depth = 0) {
  if (!schema || depth > 6) return null;
  if (schema.default !== undefined) return schema.default;
  if (schema.examples && schema.examples.length) return schema.examples[0];
  if (schema.enum && schema.enum.length) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (schema.anyOf || schema.oneOf) return example((schema.anyOf || schema.oneOf)[0], depth + 1);
  switch (type) {
    case "object": {
      const value = {};
      for (const [name, property] of Object.entries(schema.properties || {})) value[name] = example(property, depth + 1);
      return value;
    }
    case "array": return schema.items ? [example(schema.items, depth + 1)] : [];
    case "string": return schema.format === "date-time" ? new Date().toISOString() : "string";
    case "integer": case "number": return 0;
    case "boolean": return false;
    default: return schema.properties ? example({ ...schema, type: "object" }, depth) : null;
  }
}

export async function page(main, context, [serviceName, handlerName]) {
  const service = await get(`/services/${encodeURIComponent(serviceName)}`);
  const handler = service.handlers.find((hd) => hd.name === handlerName);
  if (!handler) throw new Error(`${serviceName} has no handler ${handlerName}`);
  const keyed = service.ty !== "Service";
  const schema = handler.input_json_schema;
  const initial = schema ? JSON.stringify(example(schema), null, 2) : "";
  const key = keyed ? h("input", { id: "pg-key", required: true, placeholder: "e.g. alice" }) : null;
  const body = h("textarea", { id: "pg-body", rows: 8, class: "mono", spellcheck: "false" }, initial);
  const idempotency = h("input", { id: "pg-idem", placeholder: "optional" });
  const delay = h("input", { id: "pg-delay", placeholder: "e.g. 10s (send only)" });
  const headers = h("textarea", { id: "pg-headers", rows: 2, class: "mono", placeholder: "name: value" });
  const curl = code("");
  const result = h("div", { role: "status", "aria-live": "polite" });
  const ingress = await ingressUrl();

  const path = (send) => {
    const parts = [serviceName, ...(keyed ? [key.value] : []), handlerName].map(encodeURIComponent).join("/");
    const query = send && delay.value.trim() ? `?delay=${encodeURIComponent(delay.value.trim())}` : "";
    return `/restate/${send ? "send" : "call"}/${parts}${query}`;
  };
  const requestHeaders = () => {
    const found = { "content-type": "application/json" };
    for (const line of headers.value.split("\n")) {
      const at = line.indexOf(":");
      if (at > 0) found[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
    }
    if (idempotency.value.trim()) found["idempotency-key"] = idempotency.value.trim();
    return found;
  };
  const showCurl = (send = false) => {
    const flags = Object.entries(requestHeaders()).map(([k, v]) => ` -H ${shellQuote(`${k}: ${v}`)}`).join("");
    curl.textContent = `curl -i ${shellQuote(ingress + path(send))}${flags}${body.value.trim()
      ? ` --data ${shellQuote(body.value)}` : ""}`;
  };
  const invoke = async (send) => {
    if (key && !key.reportValidity()) return;
    showCurl(send);
    clear(result, h("p", { class: "muted" }, send ? "Sending…" : "Calling…"));
    const started = performance.now();
    const response = await fetch(INGRESS + path(send), {
      method: "POST", headers: requestHeaders(), body: body.value.trim() ? body.value : undefined,
    });
    const text = await response.text();
    const elapsed = Math.round(performance.now() - started);
    let id = response.headers.get("x-restate-id");
    let pretty = text;
    try {
      const parsed = JSON.parse(text);
      pretty = JSON.stringify(parsed, null, 2);
      if (!id && parsed && parsed.invocationId) id = parsed.invocationId;
    } catch { /* not JSON: shown as it is */ }
    const shown = ["x-restate-id", "content-type", "idempotency-expires"]
      .filter((name) => response.headers.get(name)).map((name) => [name, response.headers.get(name)]);
    clear(result, section("Response",
      dl([["Status", h("span", { class: response.ok ? "ok" : "bad" }, `${response.status} ${response.statusText}`)],
        ["Time", `${elapsed} ms`], ["Invocation", id ? invocationLink(id) : ""], ...shown]),
      h("h3", {}, "Body"), code(pretty || "(empty)", { "aria-label": "Response body" })));
  };
  const form = h("form", { class: "playground", oninput: () => showCurl(false),
    onsubmit: (event) => { event.preventDefault(); invoke(false); } },
    key ? h("div", { class: "field" }, h("label", { for: "pg-key" }, service.ty === "Workflow" ? "Workflow id" : "Object key"), key) : null,
    h("div", { class: "field" }, h("label", { for: "pg-body" }, "Request body"), body),
    h("details", {}, h("summary", {}, "Options"),
      h("div", { class: "field" }, h("label", { for: "pg-idem" }, "Idempotency key"), idempotency),
      h("div", { class: "field" }, h("label", { for: "pg-delay" }, "Delay"), delay),
      h("div", { class: "field" }, h("label", { for: "pg-headers" }, "Headers"), headers)),
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "primary" }, "Invoke"),
      h("button", { type: "button", onclick: () => invoke(true) }, "Send")),
    h("details", {}, h("summary", {}, "Copy as curl"), curl));
  showCurl();
  clear(main,
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/ui/", "Services"), " › ",
      link(`/ui/services/${encodeURIComponent(serviceName)}`, serviceName), " › ", handlerName),
    h("h1", {}, "Playground: ", h("span", { class: "mono" }, `${serviceName}/${signature(handler)}`)),
    handler.documentation ? h("p", {}, handler.documentation) : null,
    h("div", { class: "grid two" }, section("Request", form), result),
    schema ? h("details", {}, h("summary", {}, "Input JSON schema"), code(JSON.stringify(schema, null, 2))) : null);
}
