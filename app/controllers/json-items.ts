// A Kubernetes list (`{"kind":..,"metadata":{..},"items":[{..},{..}]}`) split while it arrives: each
// element of the top-level `items` array is parsed on its own as soon as its last byte is in, and
// handed on; the rest (kind, metadata with continue and resourceVersion) is kept and parsed at the
// end with `items` empty. So the informer never holds a whole page, as text or as parsed objects:
// with 10,000 pods that garbage is what grew V8's heap by 137 MiB (bench/RESULTS.md, watchdog).
// Works on bytes: in UTF-8 no byte of a multi-byte character is below 0x80, so quotes, backslashes
// and brackets are found exactly.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

export class ListItemSplitter {
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** Bytes of the string being read at depth 1 (a key of the list object), else undefined. */
  #key: Buffer[] | undefined;
  #lastKey = '';
  /** Inside the top-level items array (at depth 2). */
  #inItems = false;
  /** Parts of the item being read; undefined between items. */
  #item: Buffer[] | undefined;
  #rest: Buffer[] = [];
  readonly #onItem: (item: unknown) => void;

  constructor(onItem: (item: unknown) => void) {
    this.#onItem = onItem;
  }

  write(chunk: Buffer): void {
    // Start of the bytes of this chunk that belong to the current item / to the rest.
    let itemFrom = this.#item ? 0 : -1;
    let restFrom = this.#item ? -1 : 0;
    let keyFrom = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (b === BACKSLASH) this.#escaped = true;
        else if (b === QUOTE) {
          this.#inString = false;
          if (this.#key) {
            this.#key.push(chunk.subarray(keyFrom, i));
            this.#lastKey = Buffer.concat(this.#key).toString('utf8');
            this.#key = undefined;
          }
        }
        continue;
      }
      if (b === QUOTE) {
        this.#inString = true;
        if (this.#depth === 1) {
          // A key (or a string value) of the list object: its bytes stay in the rest too.
          keyFrom = i + 1;
          this.#key = [];
        }
      } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
        if (this.#inItems && this.#depth === 2) {
          // An item starts: the rest so far is kept, the item's bytes collected apart.
          this.#keep(chunk, restFrom, i);
          restFrom = -1;
          this.#item = [];
          itemFrom = i;
        }
        this.#depth++;
        if (b === OPEN_ARRAY && this.#depth === 2 && this.#lastKey === 'items') this.#inItems = true;
      } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        this.#depth--;
        if (this.#inItems && this.#depth === 2 && this.#item) {
          this.#item.push(chunk.subarray(itemFrom, i + 1));
          const text = Buffer.concat(this.#item).toString('utf8');
          this.#item = undefined;
          itemFrom = -1;
          restFrom = i + 1;
          this.#onItem(JSON.parse(text));
        } else if (this.#inItems && this.#depth === 1) this.#inItems = false;
      } else if (this.#inItems && this.#depth === 2 && b === 0x2c) {
        // The comma between items is dropped: the rest holds `"items":[]`.
        this.#keep(chunk, restFrom, i);
        restFrom = i + 1;
      }
    }
    if (this.#key) this.#key.push(chunk.subarray(keyFrom));
    if (this.#item && itemFrom >= 0) this.#item.push(chunk.subarray(itemFrom));
    else if (restFrom >= 0) this.#keep(chunk, restFrom, chunk.length);
  }

  /** A copy of the bytes of the rest: a view would keep the whole chunk (64 KiB) alive until the end. */
  #keep(chunk: Buffer, from: number, to: number): void {
    if (to > from) this.#rest.push(Buffer.from(chunk.subarray(from, to)));
  }

  /** The list without its items (they went to onItem). Throws on JSON that did not end. */
  end(): any {
    if (this.#depth !== 0 || this.#inString || this.#item) throw new SyntaxError('list JSON ended early');
    return JSON.parse(Buffer.concat(this.#rest).toString('utf8'));
  }
}
