-- The one runner's wrapper (routing/scripts.py): runs several scripts as one, in order, each as
-- a function of its own KEYS and ARGV, exactly as if it ran alone. The first two numbers of ARGV
-- per step are its key and argument counts. A step that answers {'refused', code} stops the
-- chain (it must refuse before it writes anything): nothing after it runs.
local function slice(list, first, count)
  local part = {}
  for i = 1, count do part[i] = list[first + i - 1] end
  return part
end
local steps = {%s}
local counts = #steps * 2
local next_key, next_arg = 1, counts + 1
local results = {}
for i = 1, #steps do
  local key_count, arg_count = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local result = steps[i](slice(KEYS, next_key, key_count), slice(ARGV, next_arg, arg_count))
  next_key, next_arg = next_key + key_count, next_arg + arg_count
  if type(result) == 'table' and result[1] == 'refused' then return result end
  if result == nil then result = false end
  results[i] = result
end
return results
