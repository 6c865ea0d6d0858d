// The admin API (same origin) and the ingress, mounted same-origin under /ui/ingress/.

export const INGRESS = "/ui/ingress";

export class ApiError extends Error {
  constructor(status, message) {
    super(`${status}: ${message}`);
    this.status = status;
  }
}

async function request(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) throw new ApiError(response.status, (data && data.message) || text || response.statusText);
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const patch = (path, body) => request("PATCH", path, body);
export const put = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);

// Rows of a SQL query over the introspection tables.
export async function query(sql) {
  return (await post("/query", { query: sql })).rows;
}

// A SQL string literal.
export function lit(value) {
  return `'${String(value).replaceAll("'", "''")}'`;
}

// The admin address as users type it (for the curl commands shown next to each action).
export const ADMIN = `${location.protocol}//${location.host}`;
let ingressEndpoint = null;
export async function ingressUrl() {
  if (ingressEndpoint === null) ingressEndpoint = (await get("/version")).ingress_endpoint.replace(/\/$/, "");
  return ingressEndpoint;
}

export function shellQuote(text) {
  return `'${String(text).replaceAll("'", "'\\''")}'`;
}
