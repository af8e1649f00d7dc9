// The token relay as a Node.js server: what most Alexa skill developers would write.
//
//     node bench/node_relay.mjs PORT UPSTREAM_TOKEN_URL
//
// Node's own `http` server and its built-in `fetch` (undici, which pools and keeps connections to
// the upstream alive), one process, no framework: it reads the form, posts it to the upstream and
// answers the upstream's JSON with the RFC 6749 §5.1 no-store headers, exactly the bare relay's
// work (bench/servers.py).
import http from "node:http";

const [port, upstream] = [Number(process.argv[2]), process.argv[3]];

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

const server = http.createServer(async (request, response) => {
  try {
    if (request.method === "GET" && request.url === "/healthz") {
      response.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
      return;
    }
    if (request.method === "POST" && request.url === "/p/token") {
      const form = new URLSearchParams(await readBody(request));
      const answer = await fetch(upstream, { method: "POST", body: form });
      const body = await answer.json();
      response.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store", Pragma: "no-cache" });
      response.end(JSON.stringify(body));
      return;
    }
    response.writeHead(404).end();
  } catch (error) {
    response.writeHead(502, { "Content-Type": "application/json" }).end('{"error":"server_error"}');
  }
});
server.keepAliveTimeout = 15000;
server.listen(port, "127.0.0.1");
