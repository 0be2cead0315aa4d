using System.Text.Json;
using System.Text.Json.Nodes;

namespace Shootdown.Hardware;

/// <summary>
/// Machine files (TOML): name, description, nodes, cpus_per_node, memory, numa_distance and an
/// optional [hardware] table setting the hardware constants of the cost model. Errors name the file, line and key.
/// </summary>
public static class MachineFile
{
    private static readonly string[] Keys = ["name", "description", "nodes", "cpus_per_node", "memory", "dma32_memory", "numa_distance", "hardware", "costs"];

    public static MachineSpec Load(string path) => Parse(ConfigFile.ReadText(path, "machine file"), path);

    public static MachineSpec Parse(string text, string source)
    {
        JsonObject o = ConfigFile.ParseToml(text, source);
        string Where(string key) => ConfigFile.TomlLine(text, key) is { } l ? $"{source}:{l}: key '{key}'" : $"{source}: key '{key}'";
        foreach (var (k, _) in o)
        {
            if (!Keys.Contains(k))
            {
                throw new ConfigException($"{Where(k)}: unknown key; allowed: {string.Join(", ", Keys)}");
            }
        }
        foreach (string required in new[] { "name", "nodes", "cpus_per_node", "memory" })
        {
            if (!o.ContainsKey(required))
            {
                throw new ConfigException($"{source}: key '{required}' is missing; a machine file needs name, nodes, cpus_per_node and memory");
            }
        }
        string Str(string key) => o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw new ConfigException($"{Where(key)}: expected a string");
        long Int(string key, long min, long max)
        {
            if (o[key] is JsonValue v && v.TryGetValue(out long n))
            {
                return n >= min && n <= max ? n : throw new ConfigException($"{Where(key)}: must be in {min}..{max}, got {n}");
            }
            throw new ConfigException($"{Where(key)}: expected an integer in {min}..{max}");
        }
        try
        {
            string name = Str("name");
            string description = o.ContainsKey("description") ? Str("description") : "";
            int nodes = (int)Int("nodes", 1, 4096);
            int cpus = (int)Int("cpus_per_node", 1, 4096);
            // A size ("8GiB") or a byte count, its errors naming the key.
            long Bytes(string key, long min)
            {
                try
                {
                    return o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String
                        ? RunConfig.ParseBytes(v.GetValue<string>())
                        : Int(key, min, RunConfig.MaxMemoryBytes);
                }
                catch (ConfigException e) when (e.Key is null && !e.Message.StartsWith(source, StringComparison.Ordinal))
                {
                    throw new ConfigException(e.Message, key);
                }
            }
            long memory = Bytes("memory", 1);
            long dma32 = o.ContainsKey("dma32_memory") ? Bytes("dma32_memory", 0) : 0;
            NumaDistance distance = NumaDistance.Uniform(nodes);
            if (o["numa_distance"] is { } d)
            {
                int[][]? rows = null;
                try
                {
                    rows = d.Deserialize<int[][]>();
                }
                catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
                {
                    // reported below
                }
                if (rows is null || rows.Any(r => r is null))
                {
                    throw new ConfigException($"{Where("numa_distance")}: expected rows of integer distances, e.g. [[10, 21], [21, 10]]");
                }
                distance = new NumaDistance(rows);
                distance.Validate(nodes);
            }
            CostModel costs = CostModel.Xeon2015;
            if (o["costs"] is not null)
            {
                throw new ConfigException($"{Where("costs")}: a machine file describes hardware only: use a [hardware] table of hardware constants ({string.Join(", ", CostModel.HardwareNames.Select(CostModel.SnakeCase))}); kernel-path constants are one set for every machine, stated for a 3.4 GHz core and scaled by its core_clock_mhz and core_ipc_pct (--cost changes them for a run)");
            }
            if (o["hardware"] is { } c)
            {
                if (c is not JsonObject co)
                {
                    throw new ConfigException($"{Where("hardware")}: expected a table of hardware constants");
                }
                foreach (var (k, v) in co)
                {
                    string key = "hardware." + k;
                    string constant = CostModel.Canonical(k) ?? throw new ConfigException($"{Where(key)}: {CostModel.Unknown(k).Message}");
                    if (!CostModel.IsHardware(constant))
                    {
                        throw new ConfigException($"{Where(key)}: {constant} is a kernel-path constant, the same on every machine (stated for a 3.4 GHz core; set core_clock_mhz and core_ipc_pct to scale them); a machine file sets only hardware constants ({string.Join(", ", CostModel.HardwareNames.Select(CostModel.SnakeCase))})");
                    }
                    if (v is not JsonValue cv || !cv.TryGetValue(out long value))
                    {
                        throw new ConfigException($"{Where(key)}: expected an integer");
                    }
                    try
                    {
                        costs = costs.With(constant, value);
                    }
                    catch (ConfigException e)
                    {
                        throw new ConfigException(e.Message, key);
                    }
                }
                try
                {
                    costs.Validate();
                }
                catch (ConfigException e) when (e.Key is { } ek && ek.StartsWith("costs.", StringComparison.Ordinal))
                {
                    throw new ConfigException(e.Message, "hardware." + ek["costs.".Length..]);
                }
            }
            return new MachineSpec(name, description, nodes, cpus, memory, costs, distance) { Dma32Bytes = dma32 };
        }
        catch (ConfigException e) when (!e.Message.StartsWith(source, StringComparison.Ordinal))
        {
            throw new ConfigException(e.Key is { } k ? $"{Where(k)}: {e.Message}" : $"{source}: {e.Message}");
        }
    }
}
