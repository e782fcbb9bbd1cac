-- Tests of timeslot.lua: holdfast test --kinds examples/kinds
-- The tests of this file share one store, so each uses its own resource.

local MIN = 60000
local alice = {sub = "alice", role = "user"}
local bob = {sub = "bob", role = "user"}
local carol = {sub = "carol", role = "user"}
local admin = {sub = "root", role = "admin"}

-- A time an hour from the test's clock, on a whole minute.
local function base(t) return (t:now() // MIN + 60) * MIN end

local function ids(bookings)
  local r = {}
  for i, b in ipairs(bookings) do r[i] = b.id end
  return r
end

test("a booking is listed and announced", function(t)
  local T0 = base(t)
  local b = t:call("timeslot/r1", "book",
                   {start = T0, ["end"] = T0 + 30 * MIN, note = "ranked"}, alice)
  t:eq(b.id, 1)
  t:eq(b.user, "alice")
  t:eq(b.note, "ranked")
  local l = t:call("timeslot/r1", "list", {}, bob)
  t:eq(#l.bookings, 1)
  t:eq(l.bookings[1], b)
  t:eq(l.more, false)
  local evs = t:events("timeslot/r1", 0)
  t:eq(#evs, 1)
  t:eq(evs[1].type, "booked")
  t:eq(evs[1].data, b)
end)

test("overlapping ranges conflict, ranges that only meet do not", function(t)
  local T0 = base(t)
  t:call("timeslot/r2", "book", {start = T0 + 10 * MIN, ["end"] = T0 + 20 * MIN}, alice)
  local cases = {
    {0, 11}, {19, 30}, {12, 18}, {5, 25}, {10, 20},
  }
  for _, c in ipairs(cases) do
    local e = t:call_error("timeslot/r2", "book",
                           {start = T0 + c[1] * MIN, ["end"] = T0 + c[2] * MIN}, bob)
    t:eq(e.code, "conflict")
    t:ok(e.message:find("alice", 1, true), "the message names the holder: " .. e.message)
  end
  -- the same user overlapping their own booking conflicts too
  t:eq(t:call_error("timeslot/r2", "book",
                    {start = T0 + 15 * MIN, ["end"] = T0 + 16 * MIN}, alice).code,
       "conflict")
  t:call("timeslot/r2", "book", {start = T0, ["end"] = T0 + 10 * MIN}, bob)
  t:call("timeslot/r2", "book", {start = T0 + 20 * MIN, ["end"] = T0 + 30 * MIN}, bob)
  local l = t:call("timeslot/r2", "list", {})
  t:eq(ids(l.bookings), {2, 1, 3})
  -- refused calls left no event behind
  t:eq(#t:events("timeslot/r2", 0), 3)
end)

test("two users race for one range: exactly one wins", function(t)
  local T0 = base(t)
  local r = {start = T0, ["end"] = T0 + 60 * MIN}
  local won = t:call("timeslot/r3", "book", r, alice)
  local e = t:call_error("timeslot/r3", "book",
                         {start = T0 + 30 * MIN, ["end"] = T0 + 90 * MIN}, bob)
  t:eq(e.code, "conflict")
  local l = t:call("timeslot/r3", "list", {})
  t:eq(#l.bookings, 1)
  t:eq(l.bookings[1].user, "alice")
  t:eq(l.bookings[1].id, won.id)
end)

test("a user holds at most per_user active bookings; admin sets it", function(t)
  local T0 = base(t)
  t:eq(t:call("timeslot/r4", "settings", {}).per_user, 3)
  for i = 0, 2 do
    t:call("timeslot/r4", "book", {start = T0 + i * MIN, ["end"] = T0 + (i + 1) * MIN}, alice)
  end
  local e = t:call_error("timeslot/r4", "book",
                         {start = T0 + 5 * MIN, ["end"] = T0 + 6 * MIN}, alice)
  t:eq(e.code, "conflict")
  t:ok(e.message:find("limit", 1, true), e.message)
  -- bob is not limited by alice's bookings
  t:call("timeslot/r4", "book", {start = T0 + 5 * MIN, ["end"] = T0 + 6 * MIN}, bob)
  -- only an admin configures
  t:eq(t:call_error("timeslot/r4", "configure", {per_user = 10}, alice).code, "forbidden")
  t:eq(t:call_error("timeslot/r4", "configure", {per_user = 0}, admin).code, "bad_request")
  t:eq(t:call("timeslot/r4", "configure", {per_user = 4}, admin), {per_user = 4})
  t:call("timeslot/r4", "book", {start = T0 + 7 * MIN, ["end"] = T0 + 8 * MIN}, alice)
  t:eq(t:call_error("timeslot/r4", "book",
                    {start = T0 + 9 * MIN, ["end"] = T0 + 10 * MIN}, alice).code,
       "conflict")
  local evs = t:events("timeslot/r4", 0)
  t:eq(evs[#evs - 1].type, "configured")
  -- once a booking has ended it no longer counts
  t:advance(T0 + MIN - t:now())
  t:call("timeslot/r4", "book", {start = T0 + 9 * MIN, ["end"] = T0 + 10 * MIN}, alice)
end)

test("the holder cancels their own, others cannot, an admin can", function(t)
  local T0 = base(t)
  local a = t:call("timeslot/r5", "book", {start = T0, ["end"] = T0 + MIN}, alice)
  local b = t:call("timeslot/r5", "book", {start = T0 + MIN, ["end"] = T0 + 2 * MIN}, bob)
  t:eq(t:call_error("timeslot/r5", "cancel", {id = a.id}, bob).code, "forbidden")
  t:eq(t:call_error("timeslot/r5", "cancel", {id = 99}, alice).code, "not_found")
  t:eq(t:call_error("timeslot/r5", "cancel", {}, alice).code, "bad_request")
  t:eq(t:call("timeslot/r5", "cancel", {id = a.id}, alice), a)
  t:eq(t:call_error("timeslot/r5", "cancel", {id = a.id}, alice).code, "not_found")
  t:eq(t:call("timeslot/r5", "cancel", {id = b.id}, admin), b)
  local evs = t:events("timeslot/r5", 2)
  t:eq(#evs, 2)
  t:eq(evs[1].type, "cancelled")
  t:eq(evs[1].data, {booking = a, by = "alice", reason = "cancel"})
  t:eq(evs[2].data, {booking = b, by = "root", reason = "cancel"})
  -- the range is free again
  t:call("timeslot/r5", "book", {start = T0, ["end"] = T0 + 2 * MIN}, carol)
end)

test("an admin books for someone and books over others", function(t)
  local T0 = base(t)
  local a = t:call("timeslot/r6", "book", {start = T0, ["end"] = T0 + 10 * MIN}, alice)
  local b = t:call("timeslot/r6", "book", {start = T0 + 10 * MIN, ["end"] = T0 + 20 * MIN}, bob)
  local c = t:call("timeslot/r6", "book", {start = T0 + 30 * MIN, ["end"] = T0 + 40 * MIN}, bob)
  -- a user may neither override nor book for someone else
  t:eq(t:call_error("timeslot/r6", "book",
                    {start = T0, ["end"] = T0 + 5 * MIN, override = true}, carol).code,
       "forbidden")
  t:eq(t:call_error("timeslot/r6", "book",
                    {start = T0 + 50 * MIN, ["end"] = T0 + 55 * MIN, user = "dave"}, carol).code,
       "forbidden")
  -- without override an admin is refused like anyone
  t:eq(t:call_error("timeslot/r6", "book",
                    {start = T0 + 5 * MIN, ["end"] = T0 + 15 * MIN, user = "carol"}, admin).code,
       "conflict")
  local seq = #t:events("timeslot/r6", 0)
  local o = t:call("timeslot/r6", "book",
                   {start = T0 + 5 * MIN, ["end"] = T0 + 15 * MIN, user = "carol",
                    override = true}, admin)
  t:eq(o.user, "carol")
  t:eq(o.by, "root")
  local evs = t:events("timeslot/r6", seq)
  t:eq(#evs, 3)
  t:eq(evs[1].data, {booking = a, by = "root", reason = "override"})
  t:eq(evs[2].data, {booking = b, by = "root", reason = "override"})
  t:eq(evs[3].type, "booked")
  t:eq(ids(t:call("timeslot/r6", "list", {}).bookings), {o.id, c.id})
end)

test("bad ranges and callers are refused", function(t)
  local T0 = base(t)
  local bad = {
    {},
    {start = T0},
    {start = T0, ["end"] = T0},
    {start = T0 + MIN, ["end"] = T0},
    {start = "noon", ["end"] = T0},
    {start = T0 + 0.5, ["end"] = T0 + MIN},
    {start = -5, ["end"] = T0},
    {start = 0, ["end"] = 60000},          -- long over
    {start = T0, ["end"] = T0 + MIN, note = ""},
    {start = T0, ["end"] = T0 + MIN, note = string.rep("x", 201)},
    {start = T0, ["end"] = T0 + MIN, override = "yes"},
  }
  for i, args in ipairs(bad) do
    local e = t:call_error("timeslot/r7", "book", args, alice)
    t:ok(e.code == "bad_request", "case " .. i .. ": " .. e.code .. " " .. e.message)
  end
  -- an anonymous caller has no role that may book; an admin without a
  -- subject (as every caller is with auth off) must name the user
  t:eq(t:call_error("timeslot/r7", "book", {start = T0, ["end"] = T0 + MIN}, {}).code,
       "forbidden")
  t:eq(t:call_error("timeslot/r7", "book", {start = T0, ["end"] = T0 + MIN},
                    {role = "admin"}).code, "bad_request")
  t:eq(t:call_error("timeslot/r7", "book", {start = T0, ["end"] = T0 + MIN},
                    {sub = "d1", role = "device"}).code, "forbidden")
  t:eq(t:call_error("timeslot/r7", "nope", {}).code, "not_found")
  t:eq(#t:events("timeslot/r7", 0), 0)
end)

test("list pages through a range", function(t)
  local T0 = base(t)
  t:call("timeslot/r8", "configure", {per_user = 20}, admin)
  for i = 0, 9 do
    t:call("timeslot/r8", "book", {start = T0 + i * 10 * MIN, ["end"] = T0 + i * 10 * MIN + 5 * MIN}, alice)
  end
  local l = t:call("timeslot/r8", "list", {from = T0 + 15 * MIN, to = T0 + 42 * MIN})
  t:eq(ids(l.bookings), {3, 4, 5})
  l = t:call("timeslot/r8", "list", {from = T0 + 14 * MIN, to = T0 + 40 * MIN})
  t:eq(ids(l.bookings), {2, 3, 4}) -- [T0+10, T0+15) reaches into the range
  l = t:call("timeslot/r8", "list", {limit = 4})
  t:eq(ids(l.bookings), {1, 2, 3, 4})
  t:eq(l.more, true)
  l = t:call("timeslot/r8", "list", {from = l.bookings[4]["end"], limit = 4})
  t:eq(ids(l.bookings), {5, 6, 7, 8})
  l = t:call("timeslot/r8", "list", {from = l.bookings[4]["end"], limit = 4})
  t:eq(ids(l.bookings), {9, 10})
  t:eq(l.more, false)
  t:eq(t:call_error("timeslot/r8", "list", {limit = 0}).code, "bad_request")
end)

test("bookings survive a restart", function(t)
  local T0 = base(t)
  local a = t:call("timeslot/r9", "book", {start = T0, ["end"] = T0 + MIN}, alice)
  t:call("timeslot/r9", "configure", {per_user = 2}, admin)
  t:restart("timeslot/r9")
  t:eq(t:call("timeslot/r9", "list", {}).bookings, {a})
  t:eq(t:call("timeslot/r9", "settings", {}).per_user, 2)
  t:eq(t:call_error("timeslot/r9", "book", {start = T0, ["end"] = T0 + MIN}, bob).code,
       "conflict")
  local b = t:call("timeslot/r9", "book", {start = T0 + MIN, ["end"] = T0 + 2 * MIN}, bob)
  t:eq(b.id, 2)
  t:restart("timeslot/r9")
  t:call("timeslot/r9", "cancel", {id = a.id}, alice)
  t:eq(#t:call("timeslot/r9", "list", {}).bookings, 1)
end)
