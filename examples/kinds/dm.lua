-- dm.lua - a private conversation: dm/NAME holds the messages of a fixed
-- set of participants (two, for a buyer and a seller; at most 16).
--
--   open {participants}         -> {participants, by, at}   a participant, service, admin
--   send {text}                 -> the message             participants
--   history {after?, before?, limit?} -> {messages, more}  participants
--   mark_delivered {id}         -> {delivered, read}       participants
--   mark_read {id}              -> {delivered, read}       participants
--   get {}                      -> {participants, last, marks}  participants
--
-- Events: opened {participants, by}, message {id, from, at},
-- delivered {sub, id}, read {sub, id}.
--
-- Rules. The participant list is set once, by open, and never changes:
-- opening again with the same people answers the conversation as it is,
-- with anyone else it is a conflict (and forbidden to a caller who is not
-- a participant, so an outsider learns nothing of it). Only participants read, send and
-- mark - an admin or a service included, everyone else is forbidden; a
-- call before open is not_found. A message is {id, from, text, at,
-- status}: status gives each other participant's state of it, "sent",
-- "delivered" or "read". Marking is a watermark per participant: marking
-- id N delivered (or read) marks every message up to N; read implies
-- delivered; a mark never moves back.
--
-- Privacy of events. Who may subscribe to dm/NAME is decided by the
-- token's ACL, not by this kind (a kind sees calls, not subscriptions).
-- So the message event carries no text: a subscriber the ACL lets in sees
-- that message 7 came from alice at some time, and must call history -
-- which checks the caller - to read it. Give participants tokens whose acl
-- names their conversations (docs/kinds/lua.md, "dm").
--
-- Design notes. Keys: "p" {participants (sorted), by, at}; "n" the last
-- id; "m:" id (zero-padded, so keys sort by id) the message {id, from,
-- text, at}; "marks" {sub = {delivered = id, read = id}}. Ids are dense
-- (1, 2, 3, ...), so the newest page of history is a run of gets, and a
-- page after an id is one ctx:list.

local K = {}

local MAX_PARTICIPANTS = 16
local SUB_MAX = 128
local TEXT_MAX = 4000
local LIMIT_DEFAULT, LIMIT_MAX = 50, 200

local function fail(code, fmt, ...)
  error({code = code, message = string.format(fmt, ...)})
end

local function mkey(id) return string.format("m:%016d", id) end

local function id_arg(a, name, required)
  local v = a[name]
  if v == nil and not required then return nil end
  if math.type(v) ~= "integer" or v < 0 then
    fail("bad_request", "'%s' must be a non-negative integer", name)
  end
  return v
end

-- The conversation, after checking that the caller takes part in it.
local function member(ctx)
  local conv = ctx:get("p")
  if conv == nil then fail("not_found", "%s has not been opened", ctx.address) end
  local me = ctx.caller.sub
  for _, p in ipairs(conv.participants) do
    if p == me then return conv end
  end
  fail("forbidden", "only the participants of %s may do this", ctx.address)
end

local function marks_of(ctx, conv)
  local marks = ctx:get("marks") or {}
  for _, p in ipairs(conv.participants) do
    marks[p] = marks[p] or {delivered = 0, read = 0}
  end
  return marks
end

local function with_status(m, conv, marks)
  local status = {}
  for _, p in ipairs(conv.participants) do
    if p ~= m.from then
      local mk = marks[p]
      status[p] = mk.read >= m.id and "read"
        or mk.delivered >= m.id and "delivered" or "sent"
    end
  end
  m.status = status
  return m
end

function K.open(ctx, a)
  local ps = a.participants
  if type(ps) ~= "table" or #ps < 2 or #ps > MAX_PARTICIPANTS then
    fail("bad_request", "'participants' must list 2 to %d subjects", MAX_PARTICIPANTS)
  end
  local sorted, seen = {}, {}
  for i = 1, #ps do
    local p = ps[i]
    if type(p) ~= "string" or #p == 0 or #p > SUB_MAX then
      fail("bad_request", "'participants' must be strings of 1 to %d bytes", SUB_MAX)
    end
    if seen[p] then fail("bad_request", "'participants' names %s twice", p) end
    seen[p] = true
    sorted[i] = p
  end
  table.sort(sorted)
  local role = ctx.caller.role
  local privileged = role == "admin" or role == "service"
  local conv = ctx:get("p")
  if conv ~= nil then
    -- an outsider learns nothing about an open conversation
    if not privileged then member(ctx) end
    if table.concat(conv.participants, "\0") ~= table.concat(sorted, "\0") then
      fail("conflict", "%s is already open between other participants", ctx.address)
    end
    return conv
  end
  if not seen[ctx.caller.sub or ""] and not privileged then
    fail("forbidden", "open a conversation you take part in")
  end
  conv = {participants = sorted, by = ctx.caller.sub, at = ctx:now()}
  ctx:put("p", conv)
  ctx:emit("opened", {participants = sorted, by = ctx.caller.sub})
  return conv
end

function K.send(ctx, a)
  local conv = member(ctx)
  local text = a.text
  if type(text) ~= "string" or #text == 0 or #text > TEXT_MAX then
    fail("bad_request", "'text' must be a string of 1 to %d bytes", TEXT_MAX)
  end
  local id = (ctx:get("n") or 0) + 1
  local m = {id = id, from = ctx.caller.sub, text = text, at = ctx:now()}
  ctx:put("n", id)
  ctx:put(mkey(id), m)
  ctx:emit("message", {id = id, from = m.from, at = m.at})
  return with_status(m, conv, marks_of(ctx, conv))
end

-- Oldest first. With after: the messages after that id; else the newest
-- ones before `before` (default: all). more says whether the page was cut.
function K.history(ctx, a)
  local conv = member(ctx)
  local after = id_arg(a, "after", false)
  local before = id_arg(a, "before", false)
  local limit = id_arg(a, "limit", false) or LIMIT_DEFAULT
  if limit < 1 or limit > LIMIT_MAX then
    fail("bad_request", "'limit' must be from 1 to %d", LIMIT_MAX)
  end
  if after ~= nil and before ~= nil then
    fail("bad_request", "give 'after' or 'before', not both")
  end
  local marks, msgs, more = marks_of(ctx, conv), {}, false
  local last = ctx:get("n") or 0
  if after ~= nil then
    local rows = ctx:list("m:", {after = mkey(after), limit = limit + 1})
    more = #rows > limit
    for i = 1, math.min(#rows, limit) do msgs[i] = rows[i].value end
  else
    local hi = math.min((before or last + 1) - 1, last)
    local lo = math.max(1, hi - limit + 1)
    more = lo > 1
    for id = lo, hi do msgs[#msgs + 1] = ctx:get(mkey(id)) end
  end
  for _, m in ipairs(msgs) do with_status(m, conv, marks) end
  return {messages = msgs, more = more}
end

local function mark(ctx, a, what)
  local conv = member(ctx)
  local id = id_arg(a, "id", true)
  local last = ctx:get("n") or 0
  if id < 1 or id > last then fail("not_found", "no message %d", id) end
  local marks = marks_of(ctx, conv)
  local mk, me = marks[ctx.caller.sub], ctx.caller.sub
  local changed = false
  if what == "read" and id > mk.read then
    mk.read = id
    changed = true
    ctx:emit("read", {sub = me, id = id})
  end
  if id > mk.delivered then
    mk.delivered = id
    changed = true
    if what == "delivered" then ctx:emit("delivered", {sub = me, id = id}) end
  end
  if changed then ctx:put("marks", marks) end
  return mk
end

function K.mark_delivered(ctx, a) return mark(ctx, a, "delivered") end
function K.mark_read(ctx, a) return mark(ctx, a, "read") end

function K.get(ctx)
  local conv = member(ctx)
  return {participants = conv.participants, last = ctx:get("n") or 0,
          marks = marks_of(ctx, conv)}
end

return K
