-- wrk script for bench/fairness.py: paced GETs of one path, as one partner or as
-- an attacker guessing keys.
--
-- wrk ... -s bench/fairness.lua -- PATH KEY INTERVAL_MS
--   KEY          a partner's API key, or "random" for a new guessed key each request
--   INTERVAL_MS  each connection waits about this long between requests (spread
--                from half to one and a half times, so that they do not march
--                in step): N connections offer about N * 1000 / INTERVAL_MS a second

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local path, key, interval

function init(args)
  path, key, interval = args[1], args[2], tonumber(args[3])
  math.randomseed(os.time() * 1000 + tid)
end

function delay()
  return math.random(math.floor(interval / 2), math.floor(interval * 3 / 2))
end

function request()
  local bearer = key
  if key == "random" then
    bearer = string.format("chk_guess%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. bearer })
end
