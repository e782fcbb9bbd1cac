-- Tests of auction.lua: holdfast test --kinds examples/kinds
-- The tests of this file share one store (and one clock), so each uses
-- its own auction and its own users.

local MIN = 60000
local seller = {sub = "sam", role = "user"}

local function user(name) return {sub = name, role = "user"} end

-- The notifications in a user's inbox, newest first.
local function inbox(t, name)
  return t:call("user/" .. name, "list", {}, user(name)).items
end

test("bids must beat the current one by the increment", function(t)
  local ends = t:now() + 10 * MIN
  local au = t:call("auction/a1", "open",
                    {item = "lamp", ends_at = ends, start = 100, increment = 10}, seller)
  t:eq(au.seller, "sam")
  t:eq(au.closed, false)
  t:eq(t:call_error("auction/a1", "bid", {amount = 99}, user("ann")).code, "conflict")
  t:eq(t:call("auction/a1", "bid", {amount = 100}, user("ann")),
       {amount = 100, leader = "ann", ends_at = ends})
  local e = t:call_error("auction/a1", "bid", {amount = 109}, user("ben"))
  t:eq(e.code, "conflict")
  t:ok(e.message:find("110", 1, true), e.message)
  t:call("auction/a1", "bid", {amount = 110}, user("ben"))
  t:eq(t:call_error("auction/a1", "bid", {amount = 500}, seller).code, "forbidden")
  t:eq(t:call_error("auction/a1", "open", {item = "lamp", ends_at = ends}, seller).code,
       "conflict")
  local g = t:call("auction/a1", "get", {}, user("cat"))
  t:eq({g.amount, g.leader, g.bids}, {110, "ben", 2})
  local evs = t:events("auction/a1", 0)
  t:eq(#evs, 3)
  t:eq(evs[3].data, {amount = 110, bidder = "ben", ends_at = ends})
end)

test("bad calls are refused", function(t)
  t:eq(t:call_error("auction/a2", "bid", {amount = 5}, user("ann")).code, "not_found")
  local now = t:now()
  local bad = {
    {}, {item = "x"}, {item = "", ends_at = now + MIN}, {item = "x", ends_at = now},
    {item = "x", ends_at = now + MIN, start = 0}, {item = "x", ends_at = now + 0.5},
    {item = string.rep("x", 101), ends_at = now + MIN},
  }
  for i, args in ipairs(bad) do
    local e = t:call_error("auction/a2", "open", args, seller)
    t:ok(e.code == "bad_request", "case " .. i .. ": " .. e.code)
  end
  t:eq(t:call_error("auction/a2", "open", {item = "x", ends_at = now + MIN},
                    {sub = "d", role = "device"}).code, "forbidden")
  t:call("auction/a2", "open", {item = "x", ends_at = now + MIN}, seller)
  t:eq(t:call_error("auction/a2", "bid", {amount = "lots"}, user("ann")).code, "bad_request")
  t:eq(t:call_error("auction/a2", "bid", {amount = 5}, {sub = "svc", role = "service"}).code,
       "forbidden")
end)

test("at the end the auction closes and the winner is told", function(t)
  local ends = t:now() + 5 * MIN
  t:call("auction/a3", "open", {item = "bike", ends_at = ends, start = 50}, seller)
  t:call("auction/a3", "bid", {amount = 50}, user("dan"))
  t:call("auction/a3", "bid", {amount = 70}, user("eva"))
  t:advance(5 * MIN - 1)
  t:eq(t:call("auction/a3", "get", {}).closed, false)
  t:advance(1)
  local g = t:call("auction/a3", "get", {})
  t:eq({g.closed, g.winner, g.amount}, {true, "eva", 70})
  local evs = t:events("auction/a3", 0)
  t:eq(evs[#evs].type, "closed")
  t:eq(evs[#evs].data, {item = "bike", bids = 2, winner = "eva", amount = 70})
  t:eq(t:call_error("auction/a3", "bid", {amount = 1000}, user("dan")).code, "conflict")
  local won = inbox(t, "eva")
  t:eq(#won, 1)
  t:eq(won[1].type, "auction_won")
  t:eq(won[1].amount, 70)
  t:eq(won[1].auction, "auction/a3")
  t:eq(won[1].from, "auction/a3")
  t:eq(inbox(t, "sam")[1].type, "auction_sold")
  t:eq(#inbox(t, "dan"), 0)
  -- the close happened once: nothing more fires later
  t:advance(60 * MIN)
  t:eq(#t:events("auction/a3", 0), #evs)
end)

test("an auction nobody bid on closes unsold", function(t)
  t:call("auction/a4", "open", {item = "vase", ends_at = t:now() + MIN}, user("sue"))
  t:advance(MIN)
  local evs = t:events("auction/a4", 0)
  t:eq(evs[#evs].type, "closed")
  t:eq(evs[#evs].data, {item = "vase", bids = 0})
  t:eq(inbox(t, "sue")[1].type, "auction_unsold")
end)

test("a late bid extends the end", function(t)
  local ends = t:now() + 10 * MIN
  t:call("auction/a5", "open", {item = "desk", ends_at = ends, extend = 2 * MIN}, seller)
  t:advance(9 * MIN)
  local r = t:call("auction/a5", "bid", {amount = 5}, user("fay"))
  t:eq(r.ends_at, t:now() + 2 * MIN)
  t:advance(MIN) -- the first end passes
  t:eq(t:call("auction/a5", "get", {}).closed, false)
  t:call("auction/a5", "bid", {amount = 6}, user("gus"))
  t:advance(2 * MIN)
  local g = t:call("auction/a5", "get", {})
  t:eq({g.closed, g.winner}, {true, "gus"})
  t:eq(inbox(t, "gus")[1].type, "auction_won")
end)

test("an auction survives a restart, its alarm too", function(t)
  t:call("auction/a6", "open", {item = "clock", ends_at = t:now() + 3 * MIN}, seller)
  t:call("auction/a6", "bid", {amount = 12}, user("hal"))
  t:restart("auction/a6")
  t:eq(t:call("auction/a6", "get", {}).leader, "hal")
  t:eq(t:call_error("auction/a6", "bid", {amount = 12}, user("ida")).code, "conflict")
  t:restart("auction/a6")
  t:advance(3 * MIN)
  t:eq(t:call("auction/a6", "get", {}).winner, "hal")
  t:eq(inbox(t, "hal")[1].amount, 12)
end)
