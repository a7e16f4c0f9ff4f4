/**
 * The publications delivered on this instance most recently, by origin broker and publication
 * counter, with the id each was delivered under. The publish script records a publication once
 * however often it is sent; a second record with another id exists only if the broker lost the first
 * one's marker with its data before the copy arrived. Checking the exact pair (not the newest
 * counter per origin) keeps this right however such copies interleave.
 *
 * Only a record under another id is a copy: the same record read again (a topic followed again
 * after its subscribers left, whose new subscribers resume from before what was delivered the
 * first time) is not, and each topic's position already drops what it delivered itself.
 *
 * Bounded: the oldest pairs are forgotten first. `capacity` should exceed the number of
 * publications that can pass between two copies of one (the offline queue, plus some).
 */
export class RecentPublications {
  private readonly origins = new Map<string, number>();
  private readonly seen = new Map<number, string>();
  private readonly order: number[] = [];
  private head = 0;

  constructor(private readonly capacity: number) {}

  /** Records the publication under `id`; false if it was recorded already under another id (a copy). */
  add(origin: string, counter: number, id: string): boolean {
    const key = this.key(origin, counter);
    const known = this.seen.get(key);
    if (known !== undefined) return known === id;
    this.seen.set(key, id);
    this.order.push(key);
    if (this.order.length - this.head > this.capacity) {
      this.seen.delete(this.order[this.head]!);
      this.head += 1;
      if (this.head > 1_024 && this.head * 2 > this.order.length) {
        this.order.splice(0, this.head);
        this.head = 0;
      }
    }
    return true;
  }

  has(origin: string, counter: number): boolean {
    return this.seen.has(this.key(origin, counter));
  }

  /** One number per pair: a small index per origin, above the counter's low 32 bits. */
  private key(origin: string, counter: number): number {
    let index = this.origins.get(origin);
    if (index === undefined) {
      index = this.origins.size;
      this.origins.set(origin, index);
    }
    return index * 2 ** 32 + (counter % 2 ** 32);
  }
}
