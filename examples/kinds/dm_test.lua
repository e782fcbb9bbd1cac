-- Tests of dm.lua: holdfast test --kinds examples/kinds
-- The tests of this file share one store, so each uses its own conversation.

local alice = {sub = "alice", role = "user"}
local bob = {sub = "bob", role = "user"}
local eve = {sub = "eve", role = "user"}
local admin = {sub = "root", role = "admin"}
local shop = {sub = "shop", role = "service"}

test("a participant opens; the participants are fixed", function(t)
  local c = t:call("dm/c1", "open", {participants = {"bob", "alice"}}, alice)
  t:eq(c.participants, {"alice", "bob"})
  t:eq(c.by, "alice")
  -- the same people, in any order, get the conversation as it is
  t:eq(t:call("dm/c1", "open", {participants = {"alice", "bob"}}, bob), c)
  -- anyone else is a conflict, whoever asks
  t:eq(t:call_error("dm/c1", "open", {participants = {"alice", "bob", "eve"}}, alice).code,
       "conflict")
  t:eq(t:call_error("dm/c1", "open", {participants = {"alice", "eve"}}, admin).code,
       "conflict")
  -- an outsider is told nothing about it, even naming herself
  t:eq(t:call_error("dm/c1", "open", {participants = {"alice", "eve"}}, eve).code,
       "forbidden")
  t:eq(t:call("dm/c1", "get", {}, bob).participants, {"alice", "bob"})
  local evs = t:events("dm/c1", 0)
  t:eq(#evs, 1)
  t:eq(evs[1].type, "opened")
  t:eq(evs[1].data, {participants = {"alice", "bob"}, by = "alice"})
end)

test("only a participant, a service or an admin opens", function(t)
  t:eq(t:call_error("dm/c2", "open", {participants = {"alice", "bob"}}, eve).code,
       "forbidden")
  t:eq(t:call_error("dm/c2", "open", {participants = {"alice", "bob"}}, {}).code,
       "forbidden")
  local c = t:call("dm/c2", "open", {participants = {"alice", "bob"}}, shop)
  t:eq(c.by, "shop")
  local bad = {
    {}, {participants = {"alice"}}, {participants = "alice,bob"},
    {participants = {"alice", "alice"}}, {participants = {"alice", 7}},
    {participants = {"alice", ""}},
  }
  for i, args in ipairs(bad) do
    local e = t:call_error("dm/c3", "open", args, alice)
    t:ok(e.code == "bad_request", "case " .. i .. ": " .. e.code)
  end
end)

test("only participants read, send and mark; everyone else is forbidden", function(t)
  t:call("dm/c4", "open", {participants = {"alice", "bob"}}, shop)
  local m = t:call("dm/c4", "send", {text = "is it still for sale?"}, alice)
  t:eq(m.id, 1)
  t:eq(m.from, "alice")
  for _, who in ipairs({eve, admin, shop, {}}) do
    t:eq(t:call_error("dm/c4", "history", {}, who).code, "forbidden")
    t:eq(t:call_error("dm/c4", "send", {text = "hi"}, who).code, "forbidden")
    t:eq(t:call_error("dm/c4", "mark_read", {id = 1}, who).code, "forbidden")
    t:eq(t:call_error("dm/c4", "get", {}, who).code, "forbidden")
  end
  local h = t:call("dm/c4", "history", {}, bob)
  t:eq(#h.messages, 1)
  t:eq(h.messages[1].text, "is it still for sale?")
  -- nothing the outsiders tried left a trace
  t:eq(#t:events("dm/c4", 0), 2)
end)

test("a conversation not opened is not_found", function(t)
  t:eq(t:call_error("dm/c5", "send", {text = "hi"}, alice).code, "not_found")
  t:eq(t:call_error("dm/c5", "history", {}, alice).code, "not_found")
end)

test("delivered and read, per message and per participant", function(t)
  t:call("dm/c6", "open", {participants = {"alice", "bob", "carol"}}, alice)
  for i = 1, 3 do t:call("dm/c6", "send", {text = "m" .. i}, alice) end
  local seq = #t:events("dm/c6", 0)
  t:eq(t:call("dm/c6", "mark_delivered", {id = 3}, bob), {delivered = 3, read = 0})
  t:eq(t:call("dm/c6", "mark_read", {id = 2}, bob), {delivered = 3, read = 2})
  -- read implies delivered
  t:eq(t:call("dm/c6", "mark_read", {id = 1}, {sub = "carol", role = "user"}),
       {delivered = 1, read = 1})
  -- a mark never moves back, and an unchanged mark emits nothing
  t:eq(t:call("dm/c6", "mark_delivered", {id = 1}, bob), {delivered = 3, read = 2})
  t:eq(t:call_error("dm/c6", "mark_read", {id = 4}, bob).code, "not_found")
  t:eq(t:call_error("dm/c6", "mark_read", {}, bob).code, "bad_request")
  local h = t:call("dm/c6", "history", {}, bob)
  t:eq(h.messages[1].status, {bob = "read", carol = "read"})
  t:eq(h.messages[2].status, {bob = "read", carol = "sent"})
  t:eq(h.messages[3].status, {bob = "delivered", carol = "sent"})
  local evs = t:events("dm/c6", seq)
  t:eq(#evs, 3)
  t:eq({evs[1].type, evs[2].type, evs[3].type}, {"delivered", "read", "read"})
  t:eq(evs[1].data, {sub = "bob", id = 3})
  t:eq(evs[3].data, {sub = "carol", id = 1})
  -- a reply's own message shows the others' state
  local r = t:call("dm/c6", "send", {text = "ok"}, bob)
  t:eq(r.status, {alice = "sent", carol = "sent"})
end)

test("the message event carries no text", function(t)
  t:call("dm/c7", "open", {participants = {"alice", "bob"}}, alice)
  local m = t:call("dm/c7", "send", {text = "my address is ..."}, bob)
  local evs = t:events("dm/c7", 1)
  t:eq(evs[1].type, "message")
  t:eq(evs[1].data, {id = m.id, from = "bob", at = m.at})
  t:eq(t:call_error("dm/c7", "send", {text = ""}, bob).code, "bad_request")
  t:eq(t:call_error("dm/c7", "send", {text = string.rep("x", 4001)}, bob).code,
       "bad_request")
end)

test("history pages forwards and backwards", function(t)
  t:call("dm/c8", "open", {participants = {"alice", "bob"}}, alice)
  for i = 1, 7 do t:call("dm/c8", "send", {text = "m" .. i}, i % 2 == 1 and alice or bob) end
  local function ids(h)
    local r = {}
    for i, m in ipairs(h.messages) do r[i] = m.id end
    return r
  end
  local h = t:call("dm/c8", "history", {limit = 3}, bob)
  t:eq(ids(h), {5, 6, 7})
  t:eq(h.more, true)
  h = t:call("dm/c8", "history", {before = 5, limit = 3}, bob)
  t:eq(ids(h), {2, 3, 4})
  h = t:call("dm/c8", "history", {before = 2, limit = 3}, bob)
  t:eq(ids(h), {1})
  t:eq(h.more, false)
  h = t:call("dm/c8", "history", {after = 4, limit = 2}, alice)
  t:eq(ids(h), {5, 6})
  t:eq(h.more, true)
  h = t:call("dm/c8", "history", {after = 6}, alice)
  t:eq(ids(h), {7})
  t:eq(h.more, false)
  t:eq(t:call_error("dm/c8", "history", {after = 1, before = 3}, alice).code, "bad_request")
  t:eq(t:call_error("dm/c8", "history", {limit = 500}, alice).code, "bad_request")
end)

test("a conversation survives a restart", function(t)
  t:call("dm/c9", "open", {participants = {"alice", "bob"}}, alice)
  t:call("dm/c9", "send", {text = "one"}, alice)
  t:call("dm/c9", "mark_read", {id = 1}, bob)
  t:restart("dm/c9")
  t:eq(t:call_error("dm/c9", "history", {}, eve).code, "forbidden")
  local h = t:call("dm/c9", "history", {}, alice)
  t:eq(h.messages[1].text, "one")
  t:eq(h.messages[1].status, {bob = "read"})
  t:eq(t:call("dm/c9", "send", {text = "two"}, bob).id, 2)
  t:eq(t:call_error("dm/c9", "open", {participants = {"alice", "eve"}}, alice).code,
       "conflict")
end)
