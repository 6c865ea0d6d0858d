// The router: pages are plain functions that render into <main>; links under /ui/ navigate
// without reloading; every page gets a context whose timers stop when the user leaves it.
import { clear, errorBox, h } from "./dom.js";
import { get } from "./api.js";
import * as services from "./services.js";
import * as deployments from "./deployments.js";
import * as playground from "./playground.js";
import * as invocations from "./invocations.js";
import * as invocation from "./invocation.js";
import * as state from "./state.js";
import * as more from "./more.js";
import * as limits from "./limits.js";

const routes = [
  [/^\/ui\/?$/, services.list, "Services"],
  [/^\/ui\/services\/([^/]+)$/, services.detail, "Service"],
  [/^\/ui\/services\/([^/]+)\/handlers\/([^/]+)$/, playground.page, "Playground"],
  [/^\/ui\/deployments$/, deployments.list, "Deployments"],
  [/^\/ui\/deployments\/([^/]+)$/, deployments.detail, "Deployment"],
  [/^\/ui\/invocations$/, invocations.list, "Invocations"],
  [/^\/ui\/invocations\/([^/]+)$/, invocation.page, "Invocation"],
  [/^\/ui\/state$/, state.services, "State"],
  [/^\/ui\/state\/([^/]+)$/, state.keys, "State"],
  [/^\/ui\/state\/([^/]+)\/(.+)$/, state.entries, "State"],
  [/^\/ui\/timers$/, more.timers, "Timers"],
  [/^\/ui\/limits$/, limits.page, "Limits"],
  [/^\/ui\/dapr$/, more.dapr, "Dapr"],
  [/^\/ui\/sql$/, more.sql, "SQL"],
  [/^\/ui\/health$/, more.health, "Health"],
];

let current = null;

class PageContext {
  constructor() {
    this.alive = true;
    this.timers = [];
  }
  every(ms, fn) {
    const tick = async () => {
      if (!this.alive) return;
      try {
        await fn();
      } catch (error) {
        // A refresh that failed (the server restarting, say) is retried at the next tick; the
        // page keeps what it last showed and the header's health dot tells the user.
        console.warn("refresh failed:", error);
      }
      if (this.alive) this.timers.push(setTimeout(tick, ms));
    };
    this.timers.push(setTimeout(tick, ms));
  }
  stop() {
    this.alive = false;
    this.timers.forEach(clearTimeout);
  }
}

export function navigate(href, replace = false) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  render();
}

async function render() {
  if (current) current.stop();
  const context = (current = new PageContext());
  // Each page draws into its own element: one still loading when the user moves on writes to
  // a detached element, never over the next page.
  const main = document.createElement("div");
  document.getElementById("main").replaceChildren(main);
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  for (const link of document.querySelectorAll("nav[aria-label=Main] a")) {
    const href = link.getAttribute("href");
    const active = href === "/ui/" ? path === "/ui/" || path.startsWith("/ui/services") : path.startsWith(href);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, page, title] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    document.title = `${title} · quill`;
    const args = match.slice(1).map(decodeURIComponent);
    try {
      await page(main, context, args, params);
    } catch (error) {
      if (context.alive) clear(main, h("h1", {}, title), errorBox(error));
    }
    return;
  }
  clear(main, h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, path)));
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a");
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey) return;
  const href = anchor.getAttribute("href");
  if (!href || !href.startsWith("/ui/") || anchor.target || href.startsWith("/ui/ingress/")) return;
  event.preventDefault();
  navigate(href);
});
window.addEventListener("popstate", render);

async function health() {
  const dot = document.getElementById("health");
  try {
    await get("/health");
    dot.textContent = "healthy";
    dot.className = "health ok";
  } catch {
    dot.textContent = "unreachable";
    dot.className = "health bad";
  }
}

health();
setInterval(health, 10000);
render();
