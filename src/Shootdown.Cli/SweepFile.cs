using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Shootdown.Hardware;

namespace Shootdown.Cli;

/// <summary>One run of a sweep: its index in the product of the axes, its configuration and its key, and which [[sweep.variants]] table it runs (0-based; null without variants).</summary>
internal sealed record SweepRun(int Index, RunConfig Config, string Key, string ConfigJson, int? Variant = null);

/// <summary>
/// A sweep file: a [sweep] table of configuration keys (snake_case, as `shootdown config` prints
/// them; nested ones dotted or as [sweep.costs] tables). A key whose value is a list is an axis;
/// the sweep is the product of the axes, the first axis varying slowest. Aliases: policy and
/// policies (policy_name), seeds, machines, workloads, scale and scales ("1/N" or N: scale_divisor),
/// memory (a size before scale, as --memory), batch_size(s), swap_cluster_max, flush_ceiling
/// (policy.*); every other key is the configuration's own (nodes, cpus_per_node, costs.ipi_send_ns...).
/// <para>
/// Alternatives that are not a product — what-ifs that each change a different key — are
/// [[sweep.variants]] tables: each sets some keys over the base configuration (no lists, and no key
/// an axis varies), and the variants form the first axis, varying slowest: every variant is run
/// at every point of the other axes; an empty [[sweep.variants]] table is the base as it is.
/// </para>
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
        // The variants come out first: an array of tables, not an axis of values.
        List<List<(string Key, string Spelled, JsonNode? Value)>>? variants = null;
        if (sweep["variants"] is JsonNode vnode)
        {
            variants = Variants(vnode, text, path);
            sweep = (JsonObject)sweep.DeepClone();
            sweep.Remove("variants");
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
        if (variants is not null)
        {
            for (int v = 0; v < variants.Count; v++)
            {
                foreach (var (k, sp, _) in variants[v])
                {
                    if (axes.Exists(a => SameKey(a.Key, k)))
                    {
                        throw new ConfigException($"{path}:{VariantLine(text, v, variants.Count, sp) ?? Line(text, "variants") ?? 1}: variant {v + 1} sets '{sp}', which an axis varies; set it in the variants only, or drop the axis");
                    }
                }
            }
            // The variant number is the first axis (its values index the variants).
            var index = new JsonArray();
            for (int v = 0; v < variants.Count; v++)
            {
                index.Add(v);
            }
            axes.Insert(0, ("variant", index));
        }
        // With variants, axis 0 is theirs (found by place: a quoted key may be spelled like anything).
        int variantAxis = variants is null ? -1 : 0;
        long total = axes.Aggregate(1L, (n, a) => n * a.Values.Count);
        if (total > 1_000_000)
        {
            throw new ConfigException($"{path}: the axes make {total} runs; at most 1000000 in one sweep");
        }
        // The base's keys are looked for outside the variants' tables.
        string baseText = variants is null ? text : MaskVariants(text);
        int? LineOf(string key)
        {
            string k = spelled.TryGetValue(key, out string? s) ? s : spelled.FirstOrDefault(kv => Canonical(kv.Key) == key || kv.Value.EndsWith("." + key, StringComparison.Ordinal)).Value ?? key;
            return Line(baseText, k);
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
            var keys = new List<(string Key, JsonNode? Value)>(baseKeys);
            int variant = -1;
            for (int a = 0; a < axes.Count; a++)
            {
                if (a == variantAxis)
                {
                    variant = pick[a];
                    continue;
                }
                keys.Add((axes[a].Key, axes[a].Values[pick[a]]));
            }
            Func<string, int?> lineOf = LineOf;
            if (variant >= 0)
            {
                // The variant's keys replace the base's.
                List<(string Key, string Spelled, JsonNode? Value)> over = variants![variant];
                keys.RemoveAll(kv => over.Exists(o => SameKey(o.Key, kv.Key)));
                keys.AddRange(over.Select(o => (o.Key, o.Value)));
                int v = variant, count = variants.Count;
                lineOf = k => over.FindIndex(o => o.Key == Canonical(k)) is int at and >= 0
                    ? VariantLine(text, v, count, over[at].Spelled) ?? Line(text, "variants")
                    : LineOf(k);
            }
            RunConfig cfg = Resolve(keys, path, lineOf);
            string json = ConfigFile.ToJson(cfg);
            string runKey = Key(json);
            if (seen.TryGetValue(runKey, out int other))
            {
                string what = runs[other].Variant is int was && was != variant
                    ? $"variants {was + 1} and {variant + 1} set the same values; make them differ"
                    : $"{Describe(axes, pick)}; remove the repeated axis value";
                throw new ConfigException($"{path}: runs {other + 1} and {i + 1} of the product have the same configuration ({what})");
            }
            seen[runKey] = i;
            runs.Add(new SweepRun(i, cfg, runKey, json, variant >= 0 ? variant : null));
        }
        return runs;
    }

    private static string Describe(List<(string Key, JsonArray Values)> axes, int[] pick) =>
        string.Join(", ", axes.Select((a, i) => $"{a.Key} = {a.Values[pick[i]]?.ToJsonString()}"));

    /// <summary>Whether two canonical keys set the same thing: memory (a size before scale) and memory_bytes are one.</summary>
    private static bool SameKey(string a, string b) =>
        a == b || (a is "memory" or "memory_bytes" && b is "memory" or "memory_bytes");

    /// <summary>The text with each [[sweep.variants]] table blanked out (its lines kept, so line numbers stay).</summary>
    private static string MaskVariants(string text)
    {
        var sb = new StringBuilder(text);
        foreach (Match h in VariantHeaders(text))
        {
            // The table runs to the next table header or the end.
            Match next = Regex.Match(text[(h.Index + h.Length)..], @"^[ \t]*\[\[?[^\[\]\n]+\]\]?[ \t\r]*(#.*)?$", RegexOptions.Multiline);
            int end = next.Success ? h.Index + h.Length + next.Index : text.Length;
            for (int i = h.Index; i < end; i++)
            {
                if (sb[i] != '\n')
                {
                    sb[i] = ' ';
                }
            }
        }
        return sb.ToString();
    }

    private static MatchCollection VariantHeaders(string text) =>
        Regex.Matches(text, @"^\s*\[\[\s*sweep\s*\.\s*variants\s*\]\]", RegexOptions.Multiline);

    /// <summary>
    /// The [[sweep.variants]] tables, each as its canonical dotted keys and values (an empty table is
    /// the base configuration as it is). Refuses anything but a non-empty array of tables, a list
    /// value (a variant is one point, not an axis; numa_distance aside) and a key set twice in one
    /// table.
    /// </summary>
    private static List<List<(string Key, string Spelled, JsonNode? Value)>> Variants(JsonNode node, string text, string path)
    {
        int line = Line(text, "variants") ?? 1;
        if (node is not JsonArray array || array.Any(v => v is not JsonObject))
        {
            throw new ConfigException($"{path}:{line}: 'variants' must be an array of tables, [[sweep.variants]], each setting some keys over the base configuration");
        }
        if (array.Count == 0)
        {
            throw new ConfigException($"{path}:{line}: 'variants' is empty; give at least one [[sweep.variants]] table");
        }
        var list = new List<List<(string, string, JsonNode?)>>(array.Count);
        for (int v = 0; v < array.Count; v++)
        {
            var flat = new List<(string Key, string Spelled, JsonNode? Value)>();
            Flatten((JsonObject)array[v]!, "", flat);
            var keys = new List<(string, string, JsonNode?)>(flat.Count);
            var spelled = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, sp, value) in flat)
            {
                string key = Canonical(k);
                int? at = VariantLine(text, v, array.Count, sp);
                if (!spelled.TryAdd(key, sp))
                {
                    throw new ConfigException($"{path}:{at ?? line}: variant {v + 1}: key '{sp}' sets '{key}' again (already set by '{spelled[key]}')");
                }
                if (value is JsonArray && key != "numa_distance")
                {
                    throw new ConfigException($"{path}:{at ?? line}: variant {v + 1}: key '{sp}' is a list; a variant sets single values (put an axis in [sweep] to vary a key at every variant)");
                }
                keys.Add((key, sp, value));
            }
            list.Add(keys);
        }
        return list;
    }

    /// <summary>1-based line of <paramref name="key"/> in the <paramref name="variant"/>-th [[sweep.variants]] table (its header's line if not found there).</summary>
    private static int? VariantLine(string text, int variant, int variants, string key)
    {
        MatchCollection headers = VariantHeaders(text);
        if (headers.Count != variants)
        {
            return null; // written inline, or with headers spelled another way: no line to trust
        }
        int start = headers[variant].Index;
        int end = variant + 1 < headers.Count ? headers[variant + 1].Index : text.Length;
        int headerLine = text.AsSpan(0, start).Count('\n') + 1;
        int? inside = Line(text[start..end], key);
        return inside is { } l ? headerLine + l - 1 : headerLine;
    }

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
