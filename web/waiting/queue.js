/**
 * queue.js — a store's waiting list as the pages keep it in memory, built
 * from `list` and kept current by the store's events, exactly as
 * docs/kinds/store.md describes a board: no refetch per event.
 * Applying an event twice, or one already reflected in a `list`, is harmless.
 * @module waiting/queue
 */
export class Queue {
  constructor() {
    /** @type {Map<string, object>} ticket id → view */
    this.tickets = new Map();
    /** @type {string[]} waiting tickets in queue order */
    this.order = [];
    /** @type {string[]} called tickets, in call order */
    this.called = [];
    /** @type {string[]} finished today (seated / no_show / cancelled), newest first */
    this.done = [];
    /** the store's offset from UTC in minutes (`configure`); its local time is UTC + this */
    this.utcOffsetMin = 0;
    /** the store's day as YYYYMMDD (the date in its ticket ids), null until known */
    this.day = null;
  }

  /** Replaces everything with a `list` result (`all: true` adds `done`). */
  load(list) {
    this.tickets.clear();
    this.order = [];
    this.called = [];
    this.done = [];
    this.utcOffsetMin = list.utc_offset_min || 0;
    this.day = list.day ?? null;
    for (const t of list.tickets) {
      this.tickets.set(t.ticket, t);
      if (t.status === 'waiting') this.order.push(t.ticket);
      else if (t.status === 'called') this.called.push(t.ticket);
      else this.done.unshift(t.ticket);
    }
  }

  /** Applies one store event. @param {{type: string, data: object}} ev */
  apply(ev) {
    const d = ev.data;
    switch (ev.type) {
    case 'new_waiting':
      this.tickets.set(d.ticket, Object.assign(this.tickets.get(d.ticket) || {}, d));
      if (!this.order.includes(d.ticket)) this.order.push(d.ticket);
      break;
    case 'status_changed': {
      const t = Object.assign(this.tickets.get(d.ticket) || {}, d);
      delete t.from;
      this.tickets.set(d.ticket, t);
      this.order = this.order.filter((x) => x !== d.ticket);
      this.called = this.called.filter((x) => x !== d.ticket);
      this.done = this.done.filter((x) => x !== d.ticket);
      if (d.status === 'called') this.called.push(d.ticket);
      else if (d.status === 'waiting') this.order.push(d.ticket);
      else this.done.unshift(d.ticket);
      break;
    }
    case 'order_changed':
      this.order = d.order.slice();
      break;
    case 'configured': // staff set the store's UTC offset
      this.utcOffsetMin = d.utc_offset_min;
      this.day = d.day;
      break;
    default:
      return false;
    }
    return true;
  }

  /** @returns {object[]} waiting tickets with their current position */
  waiting() {
    return this.order.map((id, i) => Object.assign({}, this.tickets.get(id) || { ticket: id, number: '?', name: '…' }, { position: i + 1 }));
  }

  /** @returns {object[]} called tickets, oldest call first */
  calling() { return this.called.map((id) => this.tickets.get(id)).filter(Boolean); }

  /** @returns {object[]} finished tickets, newest first */
  finished() { return this.done.map((id) => this.tickets.get(id)).filter(Boolean); }

  /**
   * The store's day now, as YYYYMMDD: today at its offset, or the day the
   * store reported if that is later (a store's day never goes back, so
   * after a smaller offset it keeps the later date until midnight).
   * @param {number} [now] ms since the epoch
   */
  today(now = Date.now()) {
    const local = Number(new Date(now + this.utcOffsetMin * 60000).toISOString().slice(0, 10).replace(/-/g, ''));
    return Math.max(local, this.day || 0);
  }

  /** 1-based position of a waiting ticket, or null. @param {string} id */
  positionOf(id) {
    const i = this.order.indexOf(id);
    return i < 0 ? null : i + 1;
  }
}

/**
 * "Tue 8 Dec" from a store day (YYYYMMDD), in the page's language.
 * @param {number} day @returns {string}
 */
export function dayLabel(day) {
  const y = Math.floor(day / 10000), m = Math.floor(day / 100) % 100, d = day % 100;
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString([], { timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'short' });
}
