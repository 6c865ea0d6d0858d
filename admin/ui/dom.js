// Small DOM helpers: build elements from data, format times, and render the common pieces.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const link = (href, label, attrs = {}) => h("a", { href, ...attrs }, label);

export function ago(iso) {
  if (!iso) return "";
  const ms = Date.now() - Date.parse(iso);
  const future = ms < 0;
  const s = Math.abs(ms) / 1000;
  const text = s < 1 ? "now" : s < 60 ? `${Math.round(s)}s` : s < 3600 ? `${Math.round(s / 60)}m`
    : s < 86400 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
  return text === "now" ? text : future ? `in ${text}` : `${text} ago`;
}

export function time(iso) {
  if (!iso) return "";
  return h("time", { datetime: iso, title: iso }, `${iso.replace("T", " ").replace("Z", "")} (${ago(iso)})`);
}

export function duration(fromIso, toIso) {
  if (!fromIso) return "";
  const ms = (toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
}

export function badge(status, result, failure) {
  let word = status;
  if (status === "completed") {
    const f = (failure || "").toLowerCase();
    word = result === "success" ? "succeeded" : f === "[409] killed" ? "killed"
      : f === "[409] cancelled" || f === "[409] canceled" ? "cancelled" : "failed";
  }
  return h("span", { class: `badge s-${word}` }, word);
}

export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.length ? rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))
      : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing here."))));
}

export function section(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), ...children);
}

export function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function code(text, attrs = {}) {
  return h("pre", { class: "code", ...attrs }, h("code", {}, text));
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, String(error && error.message ? error.message : error));
}

// A confirmation dialog; resolves true when "Confirm" is pressed.
export function confirmDialog(title, body, curl) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-label": title },
      h("h2", {}, title), h("p", {}, body),
      curl ? h("details", {}, h("summary", {}, "Copy as curl"), code(curl)) : null,
      h("div", { class: "buttons" },
        h("button", { type: "button", onclick: () => done(false) }, "Close"),
        h("button", { type: "button", class: "primary", onclick: () => done(true) }, "Confirm")));
    function done(answer) {
      dialog.close();
      dialog.remove();
      resolve(answer);
    }
    dialog.addEventListener("cancel", () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function shortId(id) {
  return id && id.length > 16 ? `${id.slice(0, 9)}…${id.slice(-6)}` : id;
}

export function invocationLink(id) {
  return link(`/ui/invocations/${id}`, shortId(id), { title: id, class: "mono" });
}
