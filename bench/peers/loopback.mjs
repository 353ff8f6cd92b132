// Preloaded into the fauxqs peer (node --import): fauxqs listens on 0.0.0.0 with no
// option to change it; the benchmark keeps every server on 127.0.0.1.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (first && typeof first === "object" && first.host === "0.0.0.0") {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
