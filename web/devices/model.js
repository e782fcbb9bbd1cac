/**
 * model.js — one bookable device as the device pages keep it: the result
 * of `get`, kept current by the device's events (docs/kinds/device.md).
 * @module devices/model
 */

/** The devices shown, from `?devices=a,b,c`. */
export function deviceNames() {
  const v = new URLSearchParams(location.search).get('devices');
  return (v ? v.split(',') : ['ps5-01', 'ps5-02', 'switch-01']).map((s) => s.trim()).filter(Boolean);
}

export const STATUS_TEXT = { online: 'online', offline: 'offline', in_use: 'in use', available: 'available', fault: 'fault' };

export class Device {
  /** @param {string} name */
  constructor(name) {
    this.name = name;
    this.address = `device/${name}`;
    this.status = 'offline';
    this.meta = null;
    this.last_seen = null;
    this.changed_at = null;
    this.heartbeat_timeout_s = 30;
    /** @type {Map<string, object>} slot → reservation */
    this.reservations = new Map();
    this.loaded = false;
  }

  /** Replaces the state with a `get` result. */
  load(g) {
    Object.assign(this, { status: g.status, meta: g.meta, last_seen: g.last_seen, changed_at: g.changed_at,
      heartbeat_timeout_s: g.heartbeat_timeout_s });
    this.reservations = new Map(g.reservations.map((r) => [r.slot, r]));
    this.loaded = true;
  }

  /** Applies one device event. */
  apply(ev) {
    const d = ev.data;
    if (ev.type.startsWith('reservation_')) {
      if (d.state === 'pending' || d.state === 'confirmed') this.reservations.set(d.slot, d);
      else this.reservations.delete(d.slot); // rejected, cancelled: the slot is free again
      return true;
    }
    if (ev.type.startsWith('device_')) {
      Object.assign(this, { status: d.status, meta: d.meta, last_seen: d.last_seen, changed_at: d.changed_at });
      return true;
    }
    return false;
  }
}

/**
 * The slot names of one local day: one per hour from `from` to `to`, as
 * ISO-8601 local times with the zone offset (so approved slots get a
 * reminder ten minutes before, see the device kind).
 * @param {number} dayOffset 0 today, 1 tomorrow
 * @returns {{slot: string, label: string, start: number}[]}
 */
export function daySlots(dayOffset, from = 10, to = 21) {
  const out = [];
  for (let hr = from; hr <= to; hr++) {
    const d = new Date();
    d.setDate(d.getDate() + dayOffset);
    d.setHours(hr, 0, 0, 0);
    out.push({ slot: isoLocal(d), label: `${String(hr).padStart(2, '0')}:00`, start: d.getTime() });
  }
  return out;
}

function isoLocal(d) {
  const p = (n) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:00${sign}${p(Math.floor(a / 60))}:${p(a % 60)}`;
}

/** "18:00" (and the date when not today) of a slot name; other names as they are. */
export function slotLabel(slot) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)/.exec(slot);
  if (!m) return slot;
  const t = new Date(Date.parse(slot));
  const today = new Date();
  const time = `${m[4]}:${m[5]}`;
  if (t.toDateString() === today.toDateString()) return `today ${time}`;
  const tomorrow = new Date(today); tomorrow.setDate(today.getDate() + 1);
  if (t.toDateString() === tomorrow.toDateString()) return `tomorrow ${time}`;
  return `${m[1]}-${m[2]}-${m[3]} ${time}`;
}
