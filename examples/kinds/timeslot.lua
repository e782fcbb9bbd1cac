-- timeslot.lua - bookings of time ranges on one resource: timeslot/NAME is
-- a room, a console, a court or a desk, booked in [start, end) ranges of
-- milliseconds since the epoch.
--
--   book {start, end, note?, user?, override?} -> the booking   user, service, admin
--   cancel {id}                 -> the cancelled booking       its holder, service, admin
--   list {from?, to?, limit?}   -> {bookings, more}            anyone
--   settings {}                 -> {per_user}                  anyone
--   configure {per_user}        -> {per_user}                  admin
--
-- Events: booked (the booking), cancelled {booking, by, reason},
-- configured {per_user} - enough for a board to stay live.
--
-- Rules. Two bookings never overlap: a range that touches another
-- (a.start < b.end and b.start < a.end) is refused with conflict; ranges
-- that only meet ([0, 60) and [60, 120)) do not overlap. A user holds at
-- most per_user active bookings (end still in the future) per resource;
-- one more is a conflict. Only the holder cancels, or an admin/service.
-- An admin may book for someone (user = ...) and may book over others
-- (override = true): the bookings in the way are cancelled in the same
-- call, each with a cancelled event (reason "override"), and the limit is
-- not applied.
--
-- Design notes. Keys (times are zero-padded to 16 digits, so the string
-- order of keys is the order of the times):
--   "b:" start        the booking {id, start, end, user, by, at, note?}
--   "e:" end          start: the same bookings ordered by end
--   "i:" id           start: finds a booking by its id
--   "u:" user end     id: a user's bookings by end ("u:" + 3-digit length
--                     + the user, so no user's keys prefix another's)
--   "next", "cfg"     the last id; {per_user}
-- Because bookings never overlap, ordering them by start or by end gives
-- the same order. So the one booking that can decide a conflict is the
-- first whose end is after the new start: it overlaps exactly when its
-- start is before the new end - one ctx:list of one key, whatever the
-- number of bookings. A user's active bookings are the "u:" keys after
-- now, read with a limit of per_user. Nothing scans everything.

local K = {}

local TIME_MAX = 999999999999999 -- 15 digits: year 33658
local NOTE_MAX = 200
local USER_MAX = 128
local PER_USER_DEFAULT = 3
local PER_USER_MAX = 1000
local LIST_DEFAULT, LIST_MAX = 100, 1000

local function fail(code, fmt, ...)
  error({code = code, message = string.format(fmt, ...)})
end

local function pad(t) return string.format("%016d", t) end

-- The rows of ctx:list(prefix) whose key is after `after` (a whole key).
local function after(ctx, prefix, key, limit)
  return ctx:list(prefix, {after = key, limit = limit})
end

local function int_arg(a, name, required, min, max)
  local v = a[name]
  if v == nil and not required then return nil end
  if math.type(v) ~= "integer" or v < min or v > max then
    fail("bad_request", "'%s' must be an integer from %d to %d", name, min, max)
  end
  return v
end

local function str_arg(a, name, max)
  local v = a[name]
  if v == nil then return nil end
  if type(v) ~= "string" or #v == 0 or #v > max then
    fail("bad_request", "'%s' must be a string of 1 to %d bytes", name, max)
  end
  return v
end

local function is_admin(ctx) return ctx.caller.role == "admin" end
local function privileged(ctx)
  return ctx.caller.role == "admin" or ctx.caller.role == "service"
end

local function per_user(ctx)
  local cfg = ctx:get("cfg")
  return cfg and cfg.per_user or PER_USER_DEFAULT
end

local function user_prefix(user)
  return "u:" .. string.format("%03d", #user) .. user
end

-- Bookings overlapping [s, e), in order, at most limit of them.
local function overlapping(ctx, s, e, limit)
  local found, key = {}, "e:" .. pad(s)
  while #found < limit do
    local rows = after(ctx, "e:", key, math.min(limit - #found, 100))
    for _, r in ipairs(rows) do
      if r.value >= pad(e) then return found end
      found[#found + 1] = ctx:get("b:" .. r.value)
    end
    if #rows == 0 then return found end
    key = rows[#rows].key
  end
  return found
end

local function active_count(ctx, user, limit)
  local p = user_prefix(user)
  return #after(ctx, p, p .. pad(ctx:now()), limit)
end

local function remove(ctx, b)
  ctx:del("b:" .. pad(b.start))
  ctx:del("e:" .. pad(b["end"]))
  ctx:del("i:" .. b.id)
  ctx:del(user_prefix(b.user) .. pad(b["end"]))
end

-- Whose booking this is: the caller's own, or, for an admin or a
-- service, whoever `user` names.
local function holder(ctx, a)
  local user = str_arg(a, "user", USER_MAX)
  if user == nil then
    user = ctx.caller.sub
    if user == nil then
      fail("bad_request", "'user' is required when the caller has no subject")
    end
  elseif user ~= ctx.caller.sub and not privileged(ctx) then
    fail("forbidden", "only an admin or a service books for someone else")
  end
  return user
end

function K.book(ctx, a)
  local s = int_arg(a, "start", true, 0, TIME_MAX - 1)
  local e = int_arg(a, "end", true, 1, TIME_MAX)
  local note = str_arg(a, "note", NOTE_MAX)
  local override = a.override
  if e <= s then fail("bad_request", "'end' must be after 'start'") end
  if e <= ctx:now() then fail("bad_request", "the range has already ended") end
  if override ~= nil and type(override) ~= "boolean" then
    fail("bad_request", "'override' must be true or false")
  end
  if override and not is_admin(ctx) then
    fail("forbidden", "only an admin books over other bookings")
  end
  local user = holder(ctx, a)

  local clash = overlapping(ctx, s, e, override and math.maxinteger or 1)
  if #clash > 0 and not override then
    local c = clash[1]
    fail("conflict", "[%d, %d) overlaps booking %d of %s, [%d, %d)", s, e,
         c.id, c.user, c.start, c["end"])
  end
  if not override then
    local limit = per_user(ctx)
    if active_count(ctx, user, limit) >= limit then
      fail("conflict", "%s already holds %d active bookings here, the limit",
           user, limit)
    end
  end
  for _, c in ipairs(clash) do
    remove(ctx, c)
    ctx:emit("cancelled", {booking = c, by = ctx.caller.sub, reason = "override"})
  end

  local id = (ctx:get("next") or 0) + 1
  local b = {id = id, start = s, ["end"] = e, user = user, note = note,
             by = ctx.caller.sub, at = ctx:now()}
  ctx:put("next", id)
  ctx:put("b:" .. pad(s), b)
  ctx:put("e:" .. pad(e), pad(s))
  ctx:put("i:" .. id, pad(s))
  ctx:put(user_prefix(user) .. pad(e), id)
  ctx:emit("booked", b)
  return b
end

function K.cancel(ctx, a)
  local id = int_arg(a, "id", true, 1, math.maxinteger)
  local start = ctx:get("i:" .. id)
  if start == nil then fail("not_found", "no booking %d", id) end
  local b = ctx:get("b:" .. start)
  if b.user ~= ctx.caller.sub and not privileged(ctx) then
    fail("forbidden", "booking %d is %s's", id, b.user)
  end
  remove(ctx, b)
  ctx:emit("cancelled", {booking = b, by = ctx.caller.sub, reason = "cancel"})
  return b
end

-- The bookings that overlap [from, to), in time order. Page on with
-- from = the last booking's end.
function K.list(ctx, a)
  local from = int_arg(a, "from", false, 0, TIME_MAX) or 0
  local to = int_arg(a, "to", false, 0, TIME_MAX) or TIME_MAX
  local limit = int_arg(a, "limit", false, 1, LIST_MAX) or LIST_DEFAULT
  local found = overlapping(ctx, from, to, limit + 1)
  local more = #found > limit
  if more then found[#found] = nil end
  return {bookings = found, more = more}
end

function K.settings(ctx)
  return {per_user = per_user(ctx)}
end

function K.configure(ctx, a)
  local n = int_arg(a, "per_user", true, 1, PER_USER_MAX)
  ctx:put("cfg", {per_user = n})
  ctx:emit("configured", {per_user = n})
  return {per_user = n}
end

K._roles = {
  book = {"user", "service"},
  configure = {"admin"},
}

return K
