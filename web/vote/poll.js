/**
 * poll.js — a poll as the vote pages keep it: `tally`, then the poll's
 * events (docs/kinds/poll.md), and the bars both pages draw.
 * @module vote/poll
 */
import { h, fill } from '/ui.js';

export class Poll {
  constructor() {
    this.configured = null; // null: unknown yet; false: not configured
    this.options = [];
    this.counts = [];
    this.total = 0;
    this.closed = false;
    this.closes_at = null;
    /** the option with strictly the most votes; null when none or tied */
    this.leader = null;
  }

  /** From a `tally` result. */
  load(t) {
    Object.assign(this, { configured: true, options: t.options, counts: t.counts, total: t.total, closed: !!t.closed, closes_at: t.closes_at || null });
    // `tally` has no leader; the same rule as the poll's (strictly the most
    // votes). From here on each vote_update says who leads.
    const top = Math.max(0, ...t.counts);
    this.leader = top && t.counts.filter((n) => n === top).length === 1 ? t.options[t.counts.indexOf(top)] : null;
  }

  /** Applies one poll event; returns true if something changed. */
  apply(ev) {
    const d = ev.data;
    switch (ev.type) {
    case 'poll_configured':
      // add_option appends one option (`added`) and keeps every vote;
      // configure starts over.
      if (d.added !== undefined) {
        this.options = d.options;
        this.counts = d.options.map((_, i) => this.counts[i] || 0);
        return true;
      }
      Object.assign(this, { configured: true, options: d.options, counts: d.options.map(() => 0), total: 0, closed: false, closes_at: d.closes_at || null, leader: null });
      return true;
    case 'vote_update':
      this.leader = d.leader ?? null;
      // falls through
    case 'poll_closed':
      this.counts = d.counts;
      this.total = d.total;
      if (ev.type === 'poll_closed') this.closed = true;
      return true;
    default:
      return false;
    }
  }
}

/**
 * What a board announces when a `vote_update` says `leader_changed`: the
 * poll names the new leader (`null`: a tie at the top, or no votes left).
 * @param {{leader: string|null, total: number}} d the event's data
 * @returns {string}
 */
export function leaderNews(d) {
  if (d.leader != null) return `${d.leader} takes the lead!`;
  return d.total ? 'A tie for first place!' : 'No votes yet: nobody leads.';
}

/**
 * Draws the bars into `el`. With `onPick`, each bar is a button.
 * @param {HTMLElement} el @param {Poll} p
 * @param {{mine?: string|null, onPick?: (option: string) => void}} [opts]
 */
export function drawBars(el, p, opts = {}) {
  const max = Math.max(1, ...p.counts);
  const lead = p.leader == null ? -1 : p.options.indexOf(p.leader);
  fill(el, p.options.map((o, i) => {
    const n = p.counts[i] || 0;
    const pct = p.total ? Math.round((100 * n) / p.total) : 0;
    const tag = opts.onPick && !p.closed ? 'button' : 'div';
    return h(`${tag}.opt`, {
      class: (o === opts.mine ? 'mine ' : '') + (i === lead ? 'lead' : ''),
      dataset: { option: o, count: n },
      onclick: tag === 'button' ? () => opts.onPick(o) : null,
      'aria-pressed': tag === 'button' ? String(o === opts.mine) : null,
    },
    h('span.fill', { style: { width: `${(100 * n) / max}%` } }),
    h('span.label', null, o, o === opts.mine ? ' ✓' : ''),
    h('span.n', null, `${n}`, h('small', null, ` · ${pct}%`)));
  }));
}
