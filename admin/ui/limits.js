// Flow control: the concurrency rule book (PUT /limits/rules, POST /limits/rules/bulk-delete)
// and what runs and waits under each scope / limit key (sys_user_limits), read through /query.
import { clear, code, confirmDialog, errorBox, h, section, table, time } from "./dom.js";
import { ADMIN, post, put, query, shellQuote } from "./api.js";

export async function page(main, context) {
  const rules = h("div");
  const usage = h("div");
  const refresh = async () => {
    const [book, levels] = await Promise.all([
      query("SELECT * FROM sys_rules ORDER BY pattern"),
      query("SELECT * FROM sys_user_limits ORDER BY scope, l1, l2"),
    ]);
    clear(rules, table(["Pattern", "Concurrency", "Description", "Disabled", "Version", "Modified", ""],
      book.map((r) => [h("span", { class: "mono" }, r.pattern), r.concurrency === undefined ? "unlimited" : String(r.concurrency),
        r.description || "", r.disabled ? "yes" : "", String(r.version), time(r.last_modified),
        h("button", { type: "button", onclick: () => remove(r) }, "Delete")]),
      { "aria-label": "Rules" }));
    clear(usage, table(["Scope", "Limit key", "Level", "Running", "Limit", "Rule", "Available", "Waiting"],
      levels.map((r) => [r.scope, [r.l1, r.l2].filter(Boolean).join("/"), r.level, String(r.usage),
        r.concurrency_limit === undefined ? "unlimited" : String(r.concurrency_limit), r.rule_pattern || "",
        r.available === undefined ? "" : String(r.available), String(r.num_waiters)]),
      { "aria-label": "Usage" }));
  };
  const remove = async (rule) => {
    const body = [{ pattern: rule.pattern, expected_version: rule.version }];
    const curl = `curl -X POST ${ADMIN}/limits/rules/bulk-delete --json ${shellQuote(JSON.stringify(body))}`;
    if (!(await confirmDialog(`Delete rule ${rule.pattern}?`, "Invocations it holds back start as other rules allow.", curl))) return;
    await post("/limits/rules/bulk-delete", body);
    await refresh();
  };
  const pattern = h("input", { id: "rule-pattern", placeholder: "tenant-a/*", required: true, class: "mono" });
  const concurrency = h("input", { id: "rule-concurrency", type: "number", min: "1", placeholder: "unlimited" });
  const outcome = h("div", { role: "status" });
  const ruleBody = () => [{ pattern: pattern.value.trim(),
    ...(concurrency.value ? { limits: { concurrency: Number(concurrency.value) } } : { limits: {} }) }];
  const curl = code("", { "aria-label": "curl" });
  const showCurl = () => {
    curl.textContent = `curl -X PUT ${ADMIN}/limits/rules --json ${shellQuote(JSON.stringify(ruleBody()))}`;
  };
  pattern.addEventListener("input", showCurl);
  concurrency.addEventListener("input", showCurl);
  showCurl();
  const save = async (event) => {
    event.preventDefault();
    try {
      await put("/limits/rules", ruleBody());
      clear(outcome, h("p", {}, `Saved rule ${pattern.value.trim()}.`));
      await refresh();
    } catch (error) {
      clear(outcome, errorBox(error));
    }
  };
  clear(main, h("h1", {}, "Limits"),
    h("p", { class: "muted" }, "How many invocations of a scope, or of each limit key in it, run at once;",
      " the others wait, in arrival order, until a slot frees."),
    section("Rules", rules,
      h("form", { onsubmit: save, "aria-label": "Add or change a rule" },
        h("div", { class: "field" }, h("label", { for: "rule-pattern" }, "Pattern"), pattern),
        h("div", { class: "field" }, h("label", { for: "rule-concurrency" }, "Concurrency"), concurrency),
        h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Save rule")),
        h("details", {}, h("summary", {}, "Copy as curl"), curl)),
      outcome),
    section("Running and waiting", usage));
  await refresh();
  context.every(2000, refresh);
}
