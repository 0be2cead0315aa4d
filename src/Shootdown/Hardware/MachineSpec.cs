namespace Shootdown.Hardware;

/// <summary>
/// The simulated machine: NUMA nodes, CPUs per node, memory, distances and costs. Presets are
/// TOML files embedded from src/Shootdown/Machines/; a user's machine is a file of the same schema
/// (README, "Machine files").
/// </summary>
public sealed record MachineSpec(string Name, string Description, int Nodes, int CpusPerNode, long MemoryBytes, CostModel Costs, NumaDistance Distance)
{
    /// <summary>
    /// Memory of node 0 in ZONE_DMA32 (physical memory below 4 GiB on x86-64; the machine file's
    /// dma32_memory), the rest of node 0 in ZONE_NORMAL. 0: one zone per node.
    /// </summary>
    public long Dma32Bytes { get; init; }

    public int NrCpus => Nodes * CpusPerNode;

    public int NodeOf(int cpu) => cpu / CpusPerNode;

    public const long PageSize = 4096;

    public long TotalPages => MemoryBytes / PageSize;

    private const string ResourcePrefix = "Shootdown.Machines.";

    /// <summary>The embedded presets by name (the files' names without .toml), sorted.</summary>
    public static IReadOnlyList<string> PresetNames { get; } =
        typeof(MachineSpec).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".toml", StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..^".toml".Length]).Order(StringComparer.Ordinal).ToArray();

    /// <summary>The text of an embedded preset.</summary>
    public static string PresetText(string name)
    {
        using Stream? s = PresetNames.Contains(name) ? typeof(MachineSpec).Assembly.GetManifestResourceStream(ResourcePrefix + name + ".toml") : null;
        if (s is null)
        {
            throw new ConfigException($"unknown machine preset '{Shootdown.ParseArg.Clip(name)}'; allowed: {string.Join(", ", PresetNames)}, or a machine file (FILE.toml)");
        }
        using var reader = new StreamReader(s);
        return reader.ReadToEnd();
    }

    public static MachineSpec Preset(string name) => MachineFile.Parse(PresetText(name), $"preset {name}");

    /// <summary>A preset by name, or a machine file when the value ends in .toml or names a path.</summary>
    public static MachineSpec Resolve(string nameOrPath) =>
        IsFile(nameOrPath) ? MachineFile.Load(nameOrPath) : Preset(nameOrPath);

    public static bool IsFile(string nameOrPath) =>
        nameOrPath.EndsWith(".toml", StringComparison.OrdinalIgnoreCase) || nameOrPath.Contains('/', StringComparison.Ordinal);
}

/// <summary>An error the user caused (bad flag value, impossible machine). Reported as one line.</summary>
public sealed class ConfigException(string message, string? key = null) : Exception(message)
{
    /// <summary>The configuration key the error is about (snake_case, dotted: costs.tick_ns), if any.</summary>
    public string? Key { get; } = key;
}
