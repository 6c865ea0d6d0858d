// State of virtual objects and workflows: by service, by key, and an editor that replaces an
// object's state with the admin API's version check (a digest of the state it was read as).
import { clear, code, errorBox, h, link, section, table } from "./dom.js";
import { ADMIN, get, lit, post, query, shellQuote } from "./api.js";
import { navigate } from "./app.js";
import { sha256 } from "./sha256.js";

const hexBytes = (hex) => new Uint8Array((hex.match(/../g) || []).map((b) => parseInt(b, 16)));
const utf8 = (text) => new TextEncoder().encode(text);

// The admin API's state version, Restate's (the `restate` CLI computes the same): SHA-256 over
// the entries sorted by name, each as its index (u64 big-endian), 0x01, name, 0x02, value, 0x03;
// base64url without padding.
export async function stateVersion(entries) {
  const sorted = [...entries].sort((a, b) => compare(a[0], b[0]));
  const parts = [];
  sorted.forEach(([name, value], index) => parts.push(u64(index), [1], name, [2], value, [3]));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const part of parts) { all.set(part, at); at += part.length; }
  const hex = await sha256(all);
  const binary = (hex.match(/../g) || []).map((b) => String.fromCharCode(parseInt(b, 16))).join("");
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function u64(n) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setUint32(4, n);
  return out;
}

function compare(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export async function services(main) {
  const keyed = (await get("/services")).services.filter((s) => s.ty !== "Service");
  clear(main, h("h1", {}, "State"),
    keyed.length ? h("ul", { class: "plain" }, keyed.map((s) => h("li", {},
      link(`/ui/state/${encodeURIComponent(s.name)}`, s.name), h("span", { class: "chip" }, s.ty))))
      : h("p", { class: "muted" }, "No virtual objects or workflows registered."));
}

export async function keys(main, context, [service]) {
  const rows = await query(`SELECT service_key, COUNT(*) AS entries, SUM(value_length) AS bytes FROM state
    WHERE service_name = ${lit(service)} GROUP BY service_key ORDER BY service_key LIMIT 500`);
  const key = h("input", { id: "state-key", required: true });
  clear(main,
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/ui/state", "State"), " › ", service),
    h("h1", {}, `State of ${service}`),
    h("form", { class: "inline", onsubmit: (event) => {
      event.preventDefault();
      navigate(`/ui/state/${encodeURIComponent(service)}/${encodeURIComponent(key.value)}`);
    } }, h("label", { for: "state-key" }, "Key "), key, h("button", { type: "submit" }, "Open key")),
    table(["Key", "Entries", "Bytes"], rows.map((r) => [
      link(`/ui/state/${encodeURIComponent(service)}/${encodeURIComponent(r.service_key)}`, r.service_key),
      String(r.entries), String(r.bytes)]), { "aria-label": "Keys" }));
}

export async function entries(main, context, [service, key], params) {
  const rows = await query(`SELECT key, value_utf8, value, value_length FROM state
    WHERE service_name = ${lit(service)} AND service_key = ${lit(key)} ORDER BY key`);
  const version = await stateVersion(rows.map((r) => [utf8(r.key), hexBytes(r.value || "")]));
  const status = h("div", { role: "status" },
    params.get("saved") ? h("p", {}, "Saved: the new state applies after the object's running invocations.") : null);
  const list = h("div", { class: "entries" });
  const curl = code("");
  const current = () => {
    const state = {};
    for (const row of list.querySelectorAll(".entry")) {
      // Binary values are kept as they are (as bytes); text values are edited as text.
      state[row.dataset.key] = row.dataset.hex ? [...hexBytes(row.dataset.hex)] : row.querySelector("textarea").value;
    }
    return state;
  };
  const body = () => ({ object_key: key, new_state: current(), version });
  const showCurl = () => { curl.textContent = `curl ${ADMIN}/services/${service}/state --json ${shellQuote(JSON.stringify(body()))}`; };
  const entry = (name, value, hex) => {
    const id = `value-${name}`;
    const row = h("div", { class: "entry field", "data-key": name, "data-hex": hex },
      h("label", { for: id }, name),
      h("textarea", { id, rows: 2, class: "mono", readonly: !!hex }, hex ? `(binary, ${hex.length / 2} bytes)` : value),
      h("button", { type: "button", "aria-label": `Remove ${name}`, onclick: () => { row.remove(); showCurl(); } }, "Remove"));
    return row;
  };
  for (const r of rows) list.append(entry(r.key, r.value_utf8 ?? "", r.value_utf8 === undefined ? r.value || "" : null));
  const newName = h("input", { id: "new-key", placeholder: "name" });
  const newValue = h("input", { id: "new-value", placeholder: "value" });
  clear(main,
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/ui/state", "State"), " › ",
      link(`/ui/state/${encodeURIComponent(service)}`, service), " › ", key),
    h("h1", {}, `${service} / ${key}`),
    section("State", h("form", { oninput: showCurl, onsubmit: async (event) => {
      event.preventDefault();
      try {
        await post(`/services/${encodeURIComponent(service)}/state`, body());
        navigate(`${location.pathname}?saved=1`, true);
      } catch (error) {
        clear(status, errorBox(error));
      }
    } },
      rows.length ? null : h("p", { class: "muted" }, "No state under this key."),
      list,
      h("div", { class: "inline" }, h("label", { for: "new-key" }, "New entry: name "), newName,
        h("label", { for: "new-value" }, " and its value "), newValue,
        h("button", { type: "button", onclick: () => {
          if (!newName.value) return;
          list.append(entry(newName.value, newValue.value, null));
          newName.value = newValue.value = "";
          showCurl();
        } }, "Add key")),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Save state")),
      status, h("details", {}, h("summary", {}, "Copy as curl"), curl))),
    h("p", { class: "muted" }, `Version ${version.slice(0, 12)}…: saving fails if the state changed since it was read.`));
  showCurl();
}
