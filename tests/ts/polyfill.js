// SDK 1.16.9+ calls Promise.withResolvers, which Node 20 lacks: define the standard function.
"use strict";

Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new this((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};
