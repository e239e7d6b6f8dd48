// "100 Continue" in its place on a keep-alive connection: a request's interim answer never goes out after its final one.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * Node answers `Expect: 100-continue` itself, at once, and hands the request on. When the answer to the request
 * before it on the same connection is still going out (CUPS clients send the next request as soon as they have read
 * the last answer, before this side has seen its write complete), the 100 Continue waits in the new response's buffer;
 * if the new answer is ready before the connection is free, Node puts its status line in front of that buffer, and
 * the client reads "HTTP/1.1 100 Continue" as the IPP reply (ipptool: "0 bytes in response"). So the 100 Continue
 * and the request's handling both wait until the response owns the connection.
 */
export function continueInOrder(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const start = () => {
      res.writeContinue();
      server.emit('request', req, res);
    };
    if (res.socket) start();
    else res.once('socket', start);
  });
}
