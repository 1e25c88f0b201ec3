-- wrk script for trackd's bench: VibeFollow POST bodies, every event with a unique id.
-- wrk -s bench/post.lua URL -- RUN_ID BATCH TOKEN
--   BATCH 0: one event per request (POST /api/v1/events body);
--   BATCH n: {"events": [n events]} (POST /api/v1/events/batch body).
-- done() prints one line, "WRK_RESULT {json}", that bench/wrk.py parses.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local run_id, batch, seq = "run", 0, 0

function init(args)
  run_id = args[1] or "run"
  batch = tonumber(args[2] or "0")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] and args[3] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[3]
  end
end

local function event(n)
  return string.format(
    '{"external_user_id":"usr_%d","name":"user_signed_up","event_id":"%s-w%d-%d",'
      .. '"properties":{"plan":"trial","source":"organic","n":%d}}',
    n % 10000, run_id, tid, n, n)
end

function request()
  if batch == 0 then
    seq = seq + 1
    return wrk.format(nil, nil, nil, event(seq))
  end
  local parts = {}
  for i = 1, batch do
    seq = seq + 1
    parts[i] = event(seq)
  end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,'
      .. '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
