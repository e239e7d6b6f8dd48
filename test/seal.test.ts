// The sealed stream format: round trips, cross-implementation, and every kind of damage detected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { CHUNK_BYTES, HEADER_BYTES, OpenStream, openSealed, Sealer, SealStream, sodiumBox, tweetnaclBox, type SecretBox } from '../runtime/spool/seal.js';

const key = randomBytes(32);

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function seal(plain: Buffer, box: SecretBox, pieces = 7): Promise<Buffer> {
  const parts: Buffer[] = [];
  const step = Math.max(1, Math.ceil(plain.length / pieces));
  for (let i = 0; i < plain.length; i += step) parts.push(plain.subarray(i, i + step));
  return collect(Readable.from(parts).pipe(new SealStream(key, box)));
}

const open = (sealed: Buffer, box: SecretBox, k: Uint8Array = key) => collect(Readable.from([sealed]).pipe(new OpenStream(k, box)));

test('documents of every awkward size come back byte for byte', async () => {
  for (const size of [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES, 1_000_003]) {
    const plain = randomBytes(size);
    const sealed = await seal(plain, tweetnaclBox);
    assert.ok(sealed.length >= HEADER_BYTES + size, `sealed ${size}`);
    assert.deepEqual(await open(sealed, tweetnaclBox), plain, `size ${size}`);
  }
});

test('plaintext arriving in pieces of any size, across chunk boundaries, seals to the same document', () => {
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n) + 1;
  for (const box of [tweetnaclBox, sodiumBox].filter((b): b is SecretBox => !!b)) {
    const plain = randomBytes(5 * CHUNK_BYTES + 12345);
    for (let round = 0; round < 5; round++) {
      const sealer = new Sealer(key, box);
      const out: Buffer[] = [];
      // Pieces from 1 byte to 1.5 chunks, each a fresh copy (as the network delivers them).
      for (let at = 0; at < plain.length; ) {
        const n = Math.min(plain.length - at, round === 0 ? 1 + (at % 3) * 40000 : rand(CHUNK_BYTES * 1.5));
        sealer.push(Buffer.from(plain.subarray(at, at + n)), out);
        at += n;
      }
      sealer.finish(out);
      const sealed = Buffer.concat(out);
      assert.equal(sealed.length, HEADER_BYTES + plain.length + 6 * (16 + 4), `${box.name} round ${round}: whole chunks only`);
      assert.ok(Buffer.concat(openSealed(sealed, key, box)).equals(plain), `${box.name} round ${round}`);
    }
  }
});

test('a file sealed by tweetnacl opens with sodium-native and the other way round', { skip: sodiumBox ? false : 'sodium-native is not installed on this machine' }, async () => {
  const plain = randomBytes(5 * CHUNK_BYTES + 123);
  assert.deepEqual(await open(await seal(plain, tweetnaclBox), sodiumBox!), plain);
  assert.deepEqual(await open(await seal(plain, sodiumBox!), tweetnaclBox), plain);
});

test('sealed bytes contain no plaintext', async () => {
  const plain = Buffer.from('CANARY-'.repeat(20000));
  const sealed = await seal(plain, tweetnaclBox);
  assert.equal(sealed.includes(Buffer.from('CANARY-')), false);
});

async function rejects(sealed: Buffer, pattern: RegExp, k: Uint8Array = key) {
  await assert.rejects(open(sealed, sodiumBox ?? tweetnaclBox, k), (e: Error & { code?: string }) => e.code === 'seal_broken' && pattern.test(e.message));
}

test('tampering, truncation, reordering, extra data and a wrong key are all detected', async () => {
  const plain = randomBytes(3 * CHUNK_BYTES + 10);
  const sealed = await seal(plain, tweetnaclBox);
  const flipped = Buffer.from(sealed);
  flipped[HEADER_BYTES + 100] ^= 1;
  await rejects(flipped, /authentication/);
  const chunk = 4 + CHUNK_BYTES + 16;
  await rejects(sealed.subarray(0, HEADER_BYTES + 3 * chunk), /truncated/); // whole last chunk missing
  await rejects(sealed.subarray(0, sealed.length - 5), /truncated/); // last chunk cut short
  const swapped = Buffer.concat([sealed.subarray(0, HEADER_BYTES), sealed.subarray(HEADER_BYTES + chunk, HEADER_BYTES + 2 * chunk), sealed.subarray(HEADER_BYTES, HEADER_BYTES + chunk), sealed.subarray(HEADER_BYTES + 2 * chunk)]);
  await rejects(swapped, /authentication/);
  await rejects(Buffer.concat([sealed, sealed.subarray(HEADER_BYTES, HEADER_BYTES + chunk)]), /after its final chunk/);
  await rejects(sealed, /authentication/, randomBytes(32));
  await rejects(Buffer.from('not sealed at all, not sealed at all'), /bad magic/);
});
