namespace Shootdown.Hardware;

/// <summary>The simulated machine: NUMA nodes, CPUs per node, memory, and its costs.</summary>
public sealed record MachineSpec(string Name, int Nodes, int CpusPerNode, long MemoryBytes, CostModel Costs)
{
    public int NrCpus => Nodes * CpusPerNode;

    public int NodeOf(int cpu) => cpu / CpusPerNode;

    public const long PageSize = 4096;

    public long TotalPages => MemoryBytes / PageSize;

    public static IReadOnlyList<string> PresetNames { get; } = ["gorman-4node", "cascadelake-2s", "small-2node", "tiny"];

    /// <summary>
    /// Machine presets. <c>gorman-4node</c> is the seed's test machine: 4 sockets x 12 CPUs, 64 GiB,
    /// Linux 4.0 era Xeon (seed cover letter and patch changelogs; calibration.md).
    /// <c>cascadelake-2s</c> stands for the "2-socket Intel server" of 7e12beb8ca2a's measurement: 2 x 48 CPUs
    /// (two 24-core Cascade Lake parts with hyper-threading), 128 GiB, <see cref="CostModel.Xeon2019"/>.
    /// </summary>
    public static MachineSpec Preset(string name) => name switch
    {
        "gorman-4node" => new MachineSpec(name, 4, 12, 64L << 30, CostModel.Xeon2015),
        "cascadelake-2s" => new MachineSpec(name, 2, 48, 128L << 30, CostModel.Xeon2019),
        "small-2node" => new MachineSpec(name, 2, 4, 4L << 30, CostModel.Xeon2015),
        "tiny" => new MachineSpec(name, 1, 4, 256L << 20, CostModel.Xeon2015),
        _ => throw new ConfigException($"unknown machine preset '{name}'; allowed: {string.Join(", ", PresetNames)}"),
    };
}

/// <summary>An error the user caused (bad flag value, impossible machine). Reported as one line.</summary>
public sealed class ConfigException(string message) : Exception(message);
