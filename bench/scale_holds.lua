-- wrk script for bench/scale.py: bench/holds.lua's authorizations, and the id of
-- every hold acknowledged (201) written to a file at the end, so that the bench
-- can check each one was stored.
--
-- wrk ... -s bench/scale_holds.lua -- authorizations VISITS_FILE API_KEY TAG ACKED_FILE

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "holds.lua")

local threads_seen = {}
local setup_holds = setup

function setup(thread)
  setup_holds(thread)
  threads_seen[#threads_seen + 1] = thread
end

local init_holds = init
acked, out = {}, nil

function init(args)
  init_holds(args)
  out = args[5]
end

function response(status, headers, body)
  if status == 201 then
    acked[#acked + 1] = body:match('"authorization_id"%s*:%s*"([^"]+)"') or "?"
  end
end

function done(summary, latency, requests)
  local file
  for _, thread in ipairs(threads_seen) do
    file = file or io.open(thread:get("out"), "w")
    for _, id in ipairs(thread:get("acked")) do
      file:write(id, "\n")
    end
  end
  if file then file:close() end
end
