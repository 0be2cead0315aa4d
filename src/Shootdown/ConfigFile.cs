using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using Shootdown.Hardware;
using Shootdown.Reports;
using Tomlyn;
using Tomlyn.Model;

namespace Shootdown;

/// <summary>
/// A run configuration as a file: JSON (a result's JSON, whose "config" is used, or the config
/// object alone) or TOML, both with the snake_case keys results print. Keys left out take the
/// values of the named machine preset at the given scale; unknown keys, values of the wrong type
/// and values out of range are <see cref="ConfigException"/>s naming the file, line and key.
/// </summary>
public static class ConfigFile
{
    /// <summary>The config as results print it (the "config" object of a run's JSON).</summary>
    public static string ToJson(RunConfig cfg) => JsonSerializer.Serialize(cfg, RunResult.JsonOptions);

    /// <summary>The config as TOML: top-level keys first, then one table per nested object.</summary>
    public static string ToToml(RunConfig cfg)
    {
        var node = JsonSerializer.SerializeToNode(cfg, RunResult.JsonOptions)!.AsObject();
        var sb = new StringBuilder();
        WriteTable(sb, node, "");
        return sb.ToString();
    }

    private static void WriteTable(StringBuilder sb, JsonObject o, string prefix)
    {
        if (prefix.Length > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n[{prefix}]\n");
        }
        foreach (var (k, v) in o)
        {
            if (v is not JsonObject && k != "nr_cpus")
            {
                sb.Append(CultureInfo.InvariantCulture, $"{k} = {TomlValue(v!)}\n");
            }
        }
        foreach (var (k, v) in o)
        {
            if (v is JsonObject child)
            {
                WriteTable(sb, child, prefix.Length == 0 ? k : $"{prefix}.{k}");
            }
        }
    }

    private static string TomlValue(JsonNode v) => v switch
    {
        JsonArray a => "[" + string.Join(", ", a.Select(x => TomlValue(x!))) + "]",
        JsonValue j when j.GetValueKind() == JsonValueKind.String => JsonSerializer.Serialize(j.GetValue<string>()),
        JsonValue j when j.GetValueKind() is JsonValueKind.True or JsonValueKind.False => j.GetValueKind() == JsonValueKind.True ? "true" : "false",
        _ => v.ToJsonString(),
    };

    /// <summary>Reads a JSON or TOML file (by extension; otherwise JSON if it starts with '{').</summary>
    public static RunConfig Load(string path)
    {
        string text = ReadText(path, "--config");
        bool toml = path.EndsWith(".toml", StringComparison.OrdinalIgnoreCase)
            || !path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !text.TrimStart().StartsWith('{');
        return toml ? FromToml(text, path) : FromJson(text, path);
    }

    /// <summary>A file's text; a file that cannot be read is a <see cref="ConfigException"/> naming <paramref name="what"/>.</summary>
    internal static string ReadText(string path, string what)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot read {what} '{path}': {e.Message}");
        }
    }

    public static RunConfig FromJson(string text, string source)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}:{(e.LineNumber ?? 0) + 1}: not valid JSON: {FirstSentence(e.Message)}");
        }
        if (root is not JsonObject o)
        {
            throw new ConfigException($"{source}: expected a JSON object (a run's JSON or its \"config\")");
        }
        return FromNode(o, source, key => JsonLine(text, key));
    }

    public static RunConfig FromToml(string text, string source) =>
        FromNode(ParseToml(text, source), source, key => TomlLine(text, key));

    /// <summary>TOML text as a JSON object (tables as objects); syntax errors name the file and line.</summary>
    internal static JsonObject ParseToml(string text, string source)
    {
        try
        {
            return (JsonObject)FromToml(TomlSerializer.Deserialize<TomlTable>(text)!, "")!;
        }
        catch (NonFiniteNumberException e)
        {
            // TOML has inf and nan; no key of a configuration, machine or sweep file takes them,
            // and JSON, which every file is converted to, cannot hold them. Found by
            // ConfigTests.ParsersOnlyEverThrowConfigExceptions (CsCheck seed 6s7WINzrC4_1).
            throw new ConfigException($"{source}:{TomlLine(text, e.Key) ?? 1}: key '{e.Key}': expected a finite number, not {e.Value}");
        }
        catch (TomlException e)
        {
            throw new ConfigException($"{source}:{e.Line}: not valid TOML: {FirstSentence(e.Message)}");
        }
        catch (ArgumentException)
        {
            // Tomlyn's lexer throws this, not a TomlException, when a string's backslash ends the
            // text: wording its error, it formats the end-of-text marker as a character. Found by
            // ConfigTests.ParsersOnlyEverThrowConfigExceptions.
            throw new ConfigException($"{source}:{LineOfLastBackslash(text)}: not valid TOML: a string ends in an escape that names no character");
        }
    }

    /// <summary>The line of the last backslash (1-based), where Tomlyn's lexer gave up; 1 if none.</summary>
    private static int LineOfLastBackslash(string text)
    {
        int at = text.LastIndexOf('\\');
        return at < 0 ? 1 : 1 + text.AsSpan(0, at).Count('\n');
    }

    /// <summary>"could not be converted to System.Int64" → "expected an integer".</summary>
    private static string Expected(string m)
    {
        string t = Regex.Match(m, @"converted to (System\.)?(Nullable`1\[)?(System\.)?(\w+)").Groups[4].Value;
        return t switch
        {
            "Int32" or "Int64" or "UInt64" => "expected an integer",
            "Boolean" => "expected true or false",
            "String" => "expected a string",
            "" => FirstSentence(m),
            _ => $"expected a table of keys ({t})",
        };
    }

    private static string FirstSentence(string m) => m.ReplaceLineEndings(" ").Split(" Path:", 2)[0].Trim();

    /// <summary>A TOML value as JSON; <paramref name="key"/> is its dotted key, for the error a non-finite float (inf, nan) raises.</summary>
    private static JsonNode? FromToml(object? v, string key) => v switch
    {
        TomlTable t => new JsonObject(t.Select(kv => KeyValuePair.Create(kv.Key, FromToml(kv.Value, key.Length == 0 ? kv.Key : key + "." + kv.Key)))),
        TomlArray a => new JsonArray(a.Select(x => FromToml(x, key)).ToArray()),
        TomlTableArray ta => new JsonArray(ta.Select(x => FromToml(x, key)).ToArray()),
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        int i => JsonValue.Create(i),
        double d when !double.IsFinite(d) => throw new NonFiniteNumberException(key, d),
        double d => JsonValue.Create(d),
        null => null,
        _ => JsonValue.Create(Convert.ToString(v, CultureInfo.InvariantCulture)),
    };

    /// <summary>
    /// A config from keys already parsed (as a result's "config" object), e.g. one run of a sweep;
    /// errors name <paramref name="source"/> and the line <paramref name="lineOf"/> gives for a key.
    /// </summary>
    public static RunConfig FromObject(JsonObject user, string source, Func<string, int?> lineOf) => FromNode(user, source, lineOf);

    /// <summary>
    /// A generation of run results from before a cost key existed: a costs table that names none
    /// of <paramref name="Absent"/> and every other constant but <paramref name="Optional"/> is a
    /// whole set written then, and replays with <paramref name="Then"/>, the values its run had,
    /// whatever the preset says now.
    /// </summary>
    private sealed record OlderResults(string[] Absent, string[] Optional, (string Key, long Value)[] Then)
    {
        public bool Matches(JsonObject costs) =>
            !Absent.Any(n => costs.ContainsKey(CostModel.SnakeCase(n))) // a file that names a later key is not from before it
            && CostModel.Names.Where(n => !Absent.Contains(n) && !Optional.Contains(n)).All(n => costs.ContainsKey(CostModel.SnakeCase(n)));
    }

    /// <summary>The generations of results, oldest first; the first that matches a file's costs table is the one.</summary>
    private static readonly OlderResults[] Generations =
    [
        // Before machines had a core clock: the reference core's clock and work per clock, one
        // thread a core at the constants' speed. Constants added after the clock are not named.
        new([nameof(CostModel.CoreClockMhz), nameof(CostModel.ReadSyscallNs), nameof(CostModel.CopyToUserPageNs), nameof(CostModel.CoreIpcPct), nameof(CostModel.ThreadsPerCore), nameof(CostModel.SmtThroughputPct)], [],
            [("core_clock_mhz", CostModel.ReferenceCoreClockMhz), ("core_ipc_pct", CostModel.ReferenceCoreIpcPct), ("threads_per_core", 1), ("smt_throughput_pct", 200)]),
        // Before a work per clock: the reference core's (read(2)'s two constants may be named or not).
        new([nameof(CostModel.CoreIpcPct), nameof(CostModel.ThreadsPerCore), nameof(CostModel.SmtThroughputPct)], [nameof(CostModel.ReadSyscallNs), nameof(CostModel.CopyToUserPageNs)],
            [("core_ipc_pct", CostModel.ReferenceCoreIpcPct), ("threads_per_core", 1), ("smt_throughput_pct", 200)]),
        // Before hyperthreads (session 47): no SMT domain in the scheduler.
        new([nameof(CostModel.ThreadsPerCore), nameof(CostModel.SmtThroughputPct)], [], [("threads_per_core", 1), ("smt_throughput_pct", 200)]),
        // Before a thread alone on its core ran faster (session 48): every thread at the constants.
        new([nameof(CostModel.SmtThroughputPct)], [], [("smt_throughput_pct", 200)]),
    ];

    /// <summary>Builds a config from a parsed file: the preset's values, overlaid with the file's keys.</summary>
    private static RunConfig FromNode(JsonObject root, string source, Func<string, int?> lineOf)
    {
        JsonObject user = root["config"] is JsonObject c ? c : root;
        string Where(string key) => lineOf(key) is { } l ? $"{source}:{l}: key '{key}'" : $"{source}: key '{key}'";
        string Str(string key, string dflt) => user[key] switch
        {
            null => dflt,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            _ => throw new ConfigException($"{Where(key)}: expected a string"),
        };
        int scale = user["scale_divisor"] switch
        {
            null => 1,
            JsonValue v when v.TryGetValue(out long n) && n is > 0 and <= RunConfig.MaxScaleDivisor => (int)n,
            _ => throw new ConfigException($"{Where("scale_divisor")}: expected an integer in 1..{RunConfig.MaxScaleDivisor}"),
        };
        RunConfig preset;
        try
        {
            preset = RunConfig.Create(machine: Str("machine", "gorman-4node"), scaleDivisor: scale, workload: Str("workload", "lru-file-mmap-read"));
        }
        catch (ConfigException e) when (e.Message.StartsWith("unknown machine preset", StringComparison.Ordinal)
            && user.ContainsKey("nodes") && user.ContainsKey("cpus_per_node") && user.ContainsKey("memory_bytes"))
        {
            // A run on a user's machine file: its JSON holds the whole machine, so the file is not needed.
            preset = RunConfig.Create(scaleDivisor: scale, workload: Str("workload", "lru-file-mmap-read")) with { Machine = Str("machine", ""), NumaDistance = null };
        }
        catch (ConfigException e)
        {
            string key = e.Key ?? (e.Message.StartsWith("unknown workload", StringComparison.Ordinal) ? "workload" : "machine");
            throw new ConfigException($"{Where(key)}: {e.Message}");
        }
        var merged = JsonSerializer.SerializeToNode(preset, RunResult.JsonOptions)!.AsObject();
        if (user["costs"] is JsonObject oldCosts && Generations.FirstOrDefault(g => g.Matches(oldCosts)) is { } generation)
        {
            oldCosts = oldCosts.DeepClone().AsObject();
            foreach (var (key, value) in generation.Then)
            {
                oldCosts[key] = value;
            }
            user = user.DeepClone().AsObject();
            user["costs"] = oldCosts;
        }
        Overlay(merged, user, typeof(RunConfig), "", Where);
        string? nrCpus = user["nr_cpus"]?.ToJsonString();
        merged.Remove("nr_cpus");
        RunConfig cfg;
        try
        {
            cfg = merged.Deserialize<RunConfig>(RunResult.JsonOptions)!;
        }
        catch (JsonException e)
        {
            string key = (e.Path ?? "$").TrimStart('$', '.');
            throw new ConfigException($"{Where(key)}: {Expected(e.Message)}");
        }
        if (nrCpus is not null && nrCpus != cfg.NrCpus.ToString(CultureInfo.InvariantCulture))
        {
            throw new ConfigException($"{Where("nr_cpus")}: {nrCpus} disagrees with nodes x cpus_per_node = {cfg.NrCpus}");
        }
        try
        {
            cfg.Validate();
        }
        catch (ConfigException e)
        {
            throw new ConfigException(e.Key is { } k ? $"{Where(k)}: {e.Message}" : $"{source}: {e.Message}");
        }
        return cfg;
    }

    /// <summary>Copies the user's keys over the preset's, refusing keys the type does not have.</summary>
    private static void Overlay(JsonObject target, JsonObject user, Type type, string prefix, Func<string, string> where)
    {
        JsonTypeInfo info = RunResult.JsonOptions.GetTypeInfo(type);
        foreach (var (k, v) in user)
        {
            string key = prefix.Length == 0 ? k : $"{prefix}.{k}";
            JsonPropertyInfo? p = info.Properties.FirstOrDefault(x => x.Name == k);
            if (p is null)
            {
                throw new ConfigException($"{where(key)}: unknown key; allowed here: {string.Join(", ", info.Properties.Select(x => x.Name))}");
            }
            if (v is JsonObject uo && p.PropertyType.IsClass && p.PropertyType != typeof(string))
            {
                if (target[k] is not JsonObject to)
                {
                    to = new JsonObject();
                    target[k] = to;
                }
                Overlay(to, uo, p.PropertyType, key, where);
            }
            else
            {
                target[k] = v?.DeepClone();
            }
        }
    }

    /// <summary>1-based line of a key in JSON text (its first occurrence as "key":), or null.</summary>
    private static int? JsonLine(string text, string key) =>
        LineOf(text, new Regex($"\"{Regex.Escape(key.Split('.')[^1])}\"\\s*:"));

    /// <summary>1-based line of a key in TOML text: after its table's header if it is nested, or null.</summary>
    internal static int? TomlLine(string text, string key)
    {
        if (key.EndsWith(".tlb_entries", StringComparison.Ordinal) && TomlLineOf(text, key) is null)
        {
            return TomlLineOf(text, key[..^"tlb_entries".Length] + "tlb_ways"); // the TLB geometry is checked as one (entries = ways x a power of two)
        }
        return TomlLineOf(text, key);
    }

    private static int? TomlLineOf(string text, string key)
    {
        string[] parts = key.Split('.');
        int start = 0;
        if (parts.Length > 1)
        {
            Match h = new Regex($"^\\s*\\[\\s*{Regex.Escape(string.Join('.', parts[..^1]))}\\s*\\]", RegexOptions.Multiline).Match(text);
            if (h.Success)
            {
                start = h.Index;
            }
        }
        Match m = new Regex($"^\\s*\"?{Regex.Escape(parts[^1])}\"?\\s*=", RegexOptions.Multiline).Match(text, start);
        if (!m.Success)
        {
            m = new Regex($"^\\s*\\[\\s*{Regex.Escape(key)}\\s*\\]", RegexOptions.Multiline).Match(text); // a table
        }
        return m.Success ? text.AsSpan(0, m.Index).Count('\n') + 1 : null;
    }

    private static int? LineOf(string text, Regex r)
    {
        Match m = r.Match(text);
        return m.Success ? text.AsSpan(0, m.Index).Count('\n') + 1 : null;
    }
}

/// <summary>A TOML float that JSON cannot hold (inf, nan), at a dotted key; turned into a <see cref="ConfigException"/> with its line.</summary>
internal sealed class NonFiniteNumberException(string key, double value) : Exception($"{key}: {value}")
{
    public string Key { get; } = key;

    public string Value { get; } = double.IsNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
}
