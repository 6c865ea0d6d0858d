// TypeScript-SDK services for quill's integration tests, served over HTTP/1.1 (request/response).
// Usage: node services.js PORT
"use strict";

// SDK 1.16.9+ calls Promise.withResolvers, which Node 20 lacks: define the standard function.
Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new this((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

const http = require("node:http");
const restate = require("@restatedev/restate-sdk");

const counter = restate.object({
  name: "TsCounter",
  handlers: {
    add: async (ctx, delta) => {
      const value = ((await ctx.get("value")) ?? 0) + delta;
      ctx.set("value", value);
      return value;
    },
    get: restate.handlers.object.shared(async (ctx) => (await ctx.get("value")) ?? 0),
  },
});

const greeter = restate.service({
  name: "TsGreeter",
  handlers: {
    greet: async (ctx, name) => {
      const count = await ctx.run("count", () => 1);
      return `Hello ${name} #${count}`;
    },
    addViaCounter: async (ctx, key) => ctx.objectClient(counter, key).add(10),
    nap: async (ctx, millis) => {
      await ctx.sleep(millis);
      return "rested";
    },
  },
});

const port = Number(process.argv[2]);
const server = http.createServer(restate.createEndpointHandler({ services: [counter, greeter] }));
server.listen(port, "127.0.0.1", () => console.log(`Listening on 127.0.0.1:${port}`));
