-- auction.lua - an auction that closes by itself: auction/NAME sells one
-- item to the highest bid at a set time and tells the winner and the
-- seller through their user/ inboxes.
--
--   open {item, ends_at, start?, increment?, extend?} -> the auction   user, service, admin
--   bid {amount}               -> {amount, leader, ends_at}            user
--   get {}                     -> the auction                          anyone
--
-- Events: opened (the auction), bid {amount, bidder, ends_at},
-- closed {item, bids, winner, amount} (winner and amount absent when
-- nobody bid).
--
-- Rules. Amounts are integers (cents, say). The first bid is at least
-- start (default 1), every later one beats the current by at least
-- increment (default 1), else conflict. The seller may not bid. At
-- ends_at the auction closes: later bids are a conflict, even in the
-- moment before the alarm has run. With extend (ms, default 0: off) a bid
-- in the last extend ms moves the end to extend ms after the bid, so a
-- last-second bid leaves the others time to answer.
--
-- Design notes. The whole auction is one key, "a": it is small and every
-- call reads all of it. Closing is the alarm "close", set by open and
-- moved by an extending bid (setting an alarm again moves it); the engine
-- keeps it across restarts and fires it at least once, so closing checks
-- that it has not already happened. The notifications are ctx:send to
-- user/WINNER and user/SELLER, method notify: sends leave only with the
-- commit of the close, are delivered at least once and deduplicated by
-- the inbox, which accepts notify from an actor.

local K = {}

local ITEM_MAX = 100
local NAME = "^[%w%._:@%-]+$" -- what an address name may hold

local function fail(code, fmt, ...)
  error({code = code, message = string.format(fmt, ...)})
end

local function int_arg(a, name, default, min)
  local v = a[name]
  if v == nil and default ~= nil then return default end
  if math.type(v) ~= "integer" or v < min then
    fail("bad_request", "'%s' must be an integer of at least %d", name, min)
  end
  return v
end

local function auction(ctx)
  local au = ctx:get("a")
  if au == nil then fail("not_found", "%s has not been opened", ctx.address) end
  return au
end

function K.open(ctx, a)
  local item = a.item
  if type(item) ~= "string" or #item == 0 or #item > ITEM_MAX then
    fail("bad_request", "'item' must be a string of 1 to %d bytes", ITEM_MAX)
  end
  local ends_at = int_arg(a, "ends_at", nil, ctx:now() + 1)
  local seller = ctx.caller.sub
  if seller == nil then fail("bad_request", "the seller must have a subject") end
  if ctx:get("a") ~= nil then fail("conflict", "%s is already open", ctx.address) end
  local au = {item = item, seller = seller, ends_at = ends_at,
              start = int_arg(a, "start", 1, 1),
              increment = int_arg(a, "increment", 1, 1),
              extend = int_arg(a, "extend", 0, 0),
              bids = 0, closed = false}
  ctx:put("a", au)
  ctx:set_alarm("close", ends_at)
  ctx:emit("opened", au)
  return au
end

function K.bid(ctx, a)
  local au = auction(ctx)
  local amount = int_arg(a, "amount", nil, 1)
  local me, now = ctx.caller.sub, ctx:now()
  if au.closed or now >= au.ends_at then fail("conflict", "the auction has ended") end
  if me == au.seller then fail("forbidden", "the seller may not bid") end
  local least = au.amount and au.amount + au.increment or au.start
  if amount < least then fail("conflict", "a bid must be at least %d", least) end
  au.amount, au.leader, au.bids = amount, me, au.bids + 1
  if au.extend > 0 and au.ends_at - now < au.extend then
    au.ends_at = now + au.extend
    ctx:set_alarm("close", au.ends_at)
  end
  ctx:put("a", au)
  ctx:emit("bid", {amount = amount, bidder = me, ends_at = au.ends_at})
  return {amount = amount, leader = me, ends_at = au.ends_at}
end

function K.get(ctx)
  return auction(ctx)
end

local function notify(ctx, user, title, message, kind, amount)
  -- an inbox is user/SUB: a subject that is no address name has none
  if #user > 128 or not user:find(NAME) then return end
  ctx:send("user/" .. user, "notify",
           {title = title, message = message, priority = "high", type = kind,
            auction = ctx.address, amount = amount})
end

function K._alarm(ctx, name)
  if name ~= "close" then return end
  local au = ctx:get("a")
  if au == nil or au.closed then return end
  au.closed = true
  au.winner = au.leader
  ctx:put("a", au)
  ctx:emit("closed", {item = au.item, bids = au.bids, winner = au.winner,
                      amount = au.amount})
  if au.winner then
    notify(ctx, au.winner, "You won " .. au.item,
           string.format("Your bid of %d won %s.", au.amount, au.item),
           "auction_won", au.amount)
    notify(ctx, au.seller, "Sold: " .. au.item,
           string.format("%s sold to %s for %d.", au.item, au.winner, au.amount),
           "auction_sold", au.amount)
  else
    notify(ctx, au.seller, "Not sold: " .. au.item,
           string.format("Nobody bid on %s.", au.item), "auction_unsold", nil)
  end
end

K._roles = {
  open = {"user", "service"},
  bid = {"user"},
}

return K
