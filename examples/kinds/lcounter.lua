-- lcounter: the C counter kind (actors/counter.c) in Lua, for the bench.
--   incr {by?, emit?} -> {value}    get {} -> {value}
return {
  incr = function(ctx, args)
    local n = (ctx:get("v") or 0) + (args.by or 1)
    ctx:put("v", n)
    if args.emit then ctx:emit("changed", {value = n}) end
    return {value = n}
  end,
  get = function(ctx)
    return {value = ctx:get("v") or 0}
  end,
}
