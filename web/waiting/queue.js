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
  }

  /** Replaces everything with a `list` result (`all: true` adds `done`). */
  load(list) {
    this.tickets.clear();
    this.order = [];
    this.called = [];
    this.done = [];
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

  /** 1-based position of a waiting ticket, or null. @param {string} id */
  positionOf(id) {
    const i = this.order.indexOf(id);
    return i < 0 ? null : i + 1;
  }
}
