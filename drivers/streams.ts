// Small stream helpers shared by the IPP codec and the intake: a stream read up to some point, then handed on whole.

/** `head` (if not empty), then whatever `it` still yields: the rest of a stream whose first bytes were already read. */
export async function* withHead(head: Buffer, it: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (head.length) yield head;
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    yield next.value;
  }
}
