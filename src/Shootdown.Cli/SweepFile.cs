using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Shootdown.Hardware;

namespace Shootdown.Cli;

/// <summary>One run of a sweep: its index in the product of the axes, its configuration and its key.</summary>
internal sealed record SweepRun(int Index, RunConfig Config, string Key, string ConfigJson);

/// <summary>
/// A sweep file: a [sweep] table of configuration keys (snake_case, as `shootdown config` prints
/// them; nested ones dotted or as [sweep.costs] tables). A key whose value is a list is an axis;
/// the sweep is the product of the axes, the first axis varying slowest. Aliases: policy and
/// policies (policy_name), seeds, machines, workloads, scale and scales ("1/N" or N: scale_divisor),
/// memory (a size before scale, as --memory), batch_size(s), swap_cluster_max, flush_ceiling
/// (policy.*); every other key is the configuration's own (nodes, cpus_per_node, costs.ipi_send_ns...).
/// </summary>
internal static class SweepFile
{
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.Ordinal)
    {
        ["policy"] = "policy_name",
        ["policies"] = "policy_name",
        ["policy_names"] = "policy_name",
        ["seeds"] = "seed",
        ["machines"] = "machine",
        ["workloads"] = "workload",
        ["scale"] = "scale_divisor",
        ["scales"] = "scale_divisor",
        ["scale_divisors"] = "scale_divisor",
        ["memories"] = "memory",
        ["batch_size"] = "policy.batch_size",
        ["batch_sizes"] = "policy.batch_size",
        ["swap_cluster_max"] = "policy.swap_cluster_max",
        ["min_free_kbytes"] = "policy.min_free_kbytes",
        ["flush_ceiling"] = "policy.flush_ceiling",
        ["flush_ceilings"] = "policy.flush_ceiling",
    };

    public static IReadOnlyList<SweepRun> Load(string path)
    {
        string text = ConfigFile.ReadText(path, "sweep file");
        JsonObject root = ConfigFile.ParseToml(text, path);
        foreach (var (k, _) in root)
        {
            if (k != "sweep")
            {
                throw new ConfigException($"{path}:{Line(text, k) ?? 1}: '{k}' is not allowed at the top level; a sweep file has one [sweep] table");
            }
        }
        if (root["sweep"] is not JsonObject sweep)
        {
            throw new ConfigException($"{path}: no [sweep] table; a sweep file names its base configuration and axes under [sweep]");
        }
        // Flatten into dotted keys, remembering how the file spelled each.
        var flat = new List<(string Key, string Spelled, JsonNode? Value)>();
        Flatten(sweep, "", flat);
        var baseKeys = new List<(string Key, JsonNode? Value)>();
        var axes = new List<(string Key, JsonArray Values)>();
        var spelled = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, sp, v) in flat)
        {
            string key = Canonical(k);
            if (!spelled.TryAdd(key, sp))
            {
                throw new ConfigException($"{path}:{Line(text, sp) ?? 1}: key '{sp}' sets '{key}' again (already set by '{spelled[key]}')");
            }
            if (v is JsonArray a && key != "numa_distance")
            {
                if (a.Count == 0)
                {
                    throw new ConfigException($"{path}:{Line(text, sp) ?? 1}: axis '{sp}' is an empty list; give at least one value");
                }
                axes.Add((key, a));
            }
            else
            {
                baseKeys.Add((key, v));
            }
        }
        long total = axes.Aggregate(1L, (n, a) => n * a.Values.Count);
        if (total > 1_000_000)
        {
            throw new ConfigException($"{path}: the axes make {total} runs; at most 1000000 in one sweep");
        }
        int? LineOf(string key)
        {
            string k = spelled.TryGetValue(key, out string? s) ? s : spelled.FirstOrDefault(kv => Canonical(kv.Key) == key || kv.Value.EndsWith("." + key, StringComparison.Ordinal)).Value ?? key;
            return Line(text, k);
        }
        var runs = new List<SweepRun>((int)total);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var pick = new int[axes.Count];
        for (int i = 0; i < total; i++)
        {
            long r = i;
            for (int a = axes.Count - 1; a >= 0; a--)
            {
                pick[a] = (int)(r % axes[a].Values.Count);
                r /= axes[a].Values.Count;
            }
            var keys = new List<(string, JsonNode?)>(baseKeys);
            for (int a = 0; a < axes.Count; a++)
            {
                keys.Add((axes[a].Key, axes[a].Values[pick[a]]));
            }
            RunConfig cfg = Resolve(keys, path, LineOf);
            string json = ConfigFile.ToJson(cfg);
            string runKey = Key(json);
            if (seen.TryGetValue(runKey, out int other))
            {
                throw new ConfigException($"{path}: runs {other + 1} and {i + 1} of the product have the same configuration ({Describe(axes, pick)}); remove the repeated axis value");
            }
            seen[runKey] = i;
            runs.Add(new SweepRun(i, cfg, runKey, json));
        }
        return runs;
    }

    private static string Describe(List<(string Key, JsonArray Values)> axes, int[] pick) =>
        string.Join(", ", axes.Select((a, i) => $"{a.Key} = {a.Values[pick[i]]?.ToJsonString()}"));

    /// <summary>A stable key of a configuration: SHA-256 of its JSON (as results print it), 32 hex digits.</summary>
    public static string Key(string configJson) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(configJson)))[..32];

    private static string Canonical(string key) => Aliases.TryGetValue(key, out string? c) ? c : key;

    private static void Flatten(JsonObject o, string prefix, List<(string, string, JsonNode?)> into)
    {
        foreach (var (k, v) in o)
        {
            string key = prefix.Length == 0 ? k : $"{prefix}.{k}";
            if (v is JsonObject child)
            {
                Flatten(child, key, into);
            }
            else
            {
                into.Add((key, key, v));
            }
        }
    }

    /// <summary>The configuration of one point of the product.</summary>
    private static RunConfig Resolve(List<(string Key, JsonNode? Value)> keys, string path, Func<string, int?> lineOf)
    {
        string Where(string key) => lineOf(key) is { } l ? $"{path}:{l}: key '{key}'" : $"{path}: key '{key}'";
        var user = new JsonObject();
        JsonNode? memory = null;
        int scale = 1;
        foreach (var (k, v) in keys)
        {
            if (k == "memory")
            {
                memory = v;
                continue;
            }
            JsonNode? value = v?.DeepClone();
            if (k == "scale_divisor" && v is JsonValue sv && sv.TryGetValue(out string? s))
            {
                try
                {
                    value = JsonValue.Create((long)RunConfig.ParseScale(s));
                }
                catch (ConfigException e)
                {
                    throw new ConfigException($"{Where("scale")}: {e.Message}");
                }
            }
            if (k == "scale_divisor" && value is JsonValue n && n.TryGetValue(out long sl) && sl is > 0 and <= int.MaxValue)
            {
                scale = (int)sl;
            }
            Set(user, k, value);
        }
        if (memory is not null)
        {
            long bytes;
            if (memory is JsonValue mv && mv.TryGetValue(out string? ms))
            {
                try
                {
                    bytes = RunConfig.ParseBytes(ms);
                }
                catch (ConfigException e)
                {
                    throw new ConfigException($"{Where("memory")}: {e.Message}");
                }
            }
            else if (memory is JsonValue lv && lv.TryGetValue(out long l) && l > 0)
            {
                bytes = l;
            }
            else
            {
                throw new ConfigException($"{Where("memory")}: expected a size such as \"8GiB\" (before scale)");
            }
            Set(user, "memory_bytes", JsonValue.Create(bytes / scale));
        }
        return ConfigFile.FromObject(user, path, lineOf);
    }

    private static void Set(JsonObject o, string dotted, JsonNode? v)
    {
        string[] parts = dotted.Split('.');
        for (int i = 0; i < parts.Length - 1; i++)
        {
            if (o[parts[i]] is not JsonObject child)
            {
                child = new JsonObject();
                o[parts[i]] = child;
            }
            o = child;
        }
        o[parts[^1]] = v;
    }

    /// <summary>1-based line where a (possibly dotted) key is set: its last part followed by '='.</summary>
    private static int? Line(string text, string key)
    {
        string last = key.Split('.')[^1];
        Match m = new Regex($"^[^#\\n]*?(^|[.\\t ])\"?{Regex.Escape(last)}\"?\\s*=", RegexOptions.Multiline).Match(text);
        if (!m.Success)
        {
            m = new Regex($"^\\s*\\[[^\\]]*{Regex.Escape(last)}\\s*\\]", RegexOptions.Multiline).Match(text);
        }
        return m.Success ? text.AsSpan(0, m.Index).Count('\n') + 1 : null;
    }

    /// <summary>"K/N" → the 0-based K-1 and N.</summary>
    public static (int Index, int Count) ParseShard(string s)
    {
        string[] p = s.Split('/');
        if (p.Length != 2 || !int.TryParse(p[0], NumberStyles.None, CultureInfo.InvariantCulture, out int k)
            || !int.TryParse(p[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n))
        {
            throw new ConfigException($"malformed --shard '{ParseArg.Clip(s)}'; expected K/N, e.g. 1/4 (shards are numbered from 1)");
        }
        if (n < 1 || k < 1 || k > n)
        {
            throw new ConfigException($"--shard {k}/{n}: K must be in 1..N and N at least 1");
        }
        return (k - 1, n);
    }
}
