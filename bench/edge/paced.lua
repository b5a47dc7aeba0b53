-- wrk script for scripts/bench-edge's paced pass: each connection waits a random think time
-- before each request (exponential, so arrivals are bursty as real visitors' are), with the mean
-- given in milliseconds as the script's argument (`wrk -s paced.lua ... URL -- MEAN_MS`). With
-- C connections and a mean think time T the offered load is about C / (T + latency) requests a
-- second, the same for every proxy measured with the same T.
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
end

function init(args)
  mean_ms = tonumber(args[1])
  if mean_ms == nil or mean_ms <= 0 then
    error("paced.lua: give the mean think time in ms after --, e.g. -- 6.4")
  end
  math.randomseed(os.time() * 1000 + thread_number)
end

-- wrk truncates the delay to whole milliseconds; adding half of one rounds it instead, which
-- keeps the mean where it was asked.
function delay()
  return -mean_ms * math.log(1 - math.random()) + 0.5
end
