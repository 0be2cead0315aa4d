namespace Shootdown.Hardware;

/// <summary>
/// Where kernel data lives in the machine's caches, and what it costs to pull a cache line to the
/// CPU that touches it. A line last written by this CPU is in its own cache (no extra cost: the
/// kernel-path constants are for code running on cached data); one written by another CPU of the
/// same socket comes from that core (<see cref="CostModel.CacheLineSameNodeNs"/>); one written on
/// another socket crosses the interconnect (<see cref="CostModel.CacheLineRemoteNodeNs"/>); one in
/// no cache comes from the DRAM of its node (<see cref="CostModel.DramLocalNs"/> or
/// <see cref="CostModel.DramRemoteNodeNs"/>). Remote figures are for the reference distance 21 and
/// scale with the machine's NUMA distance. Owners are CPU ids; -1 = no cache holds the line.
/// The model tracks the lines the seed's workload moves between CPUs: struct pages, page-table
/// lines, the radix-tree lines of a file, and every spinlock's word with the data it guards.
/// </summary>
public sealed class CacheLines
{
    private readonly int[] _nodeOfCpu;
    private readonly CostModel _c;
    private readonly long[] _dram;

    /// <summary>A modified line's transfer between a CPU of node a and one of node b (row-major), same node or scaled by distance.</summary>
    private readonly long[] _line;

    public CacheLines(int nodes, int cpusPerNode, NumaDistance distance, CostModel costs)
    {
        _nodeOfCpu = new int[nodes * cpusPerNode];
        for (int c = 0; c < _nodeOfCpu.Length; c++)
        {
            _nodeOfCpu[c] = c / cpusPerNode;
        }
        _c = costs;
        Nodes = nodes;
        _dram = new long[nodes * nodes];
        _line = new long[nodes * nodes];
        for (int a = 0; a < nodes; a++)
        {
            for (int b = 0; b < nodes; b++)
            {
                _dram[a * nodes + b] = a == b ? costs.DramLocalNs : distance.Scale(costs.DramRemoteNodeNs, a, b);
                _line[a * nodes + b] = a == b ? costs.CacheLineSameNodeNs : distance.Scale(costs.CacheLineRemoteNodeNs, a, b);
            }
        }
    }

    public int Nodes { get; }

    /// <summary>The cost for <paramref name="cpu"/> to take (for writing) a line last written by <paramref name="owner"/>.</summary>
    public long Transfer(int owner, int cpu)
    {
        if (owner == cpu)
        {
            return 0;
        }
        if (owner < 0)
        {
            return _dram[_nodeOfCpu[cpu] * Nodes + _nodeOfCpu[cpu]];
        }
        return _line[_nodeOfCpu[owner] * Nodes + _nodeOfCpu[cpu]];
    }

    /// <summary>A line of memory on <paramref name="memNode"/> that no cache holds, read by a CPU of <paramref name="cpuNode"/>.</summary>
    public long Dram(int cpuNode, int memNode) => _dram[cpuNode * Nodes + memNode];

    /// <summary>Reads a tracked line without taking it: the transfer from its owner's cache, or DRAM of <paramref name="memNode"/> if no cache has it.</summary>
    public long Read(short owner, int cpu, int memNode) =>
        owner == cpu ? 0 : owner < 0 ? _dram[_nodeOfCpu[cpu] * Nodes + memNode] : Transfer(owner, cpu);

    /// <summary>
    /// Writes a tracked line: returns the transfer cost and makes <paramref name="cpu"/> its owner.
    /// A line with no owner yet is read from DRAM of <paramref name="memNode"/>.
    /// </summary>
    public long Take(ref short owner, int cpu, int memNode)
    {
        int o = owner;
        owner = (short)cpu;
        if (o == cpu)
        {
            return 0;
        }
        return o < 0 ? _dram[_nodeOfCpu[cpu] * Nodes + memNode] : Transfer(o, cpu);
    }

    /// <summary>Takes a line of kernel data allocated on <paramref name="cpu"/>'s node (a lock word, a counter).</summary>
    public long Take(ref int owner, int cpu) => Take(ref owner, cpu, _nodeOfCpu[cpu]);

    /// <summary>Like <see cref="Take(ref short, int, int)"/> for lines kept in an int.</summary>
    public long Take(ref int owner, int cpu, int memNode)
    {
        int o = owner;
        owner = cpu;
        if (o == cpu)
        {
            return 0;
        }
        return o < 0 ? _dram[_nodeOfCpu[cpu] * Nodes + memNode] : Transfer(o, cpu);
    }

    /// <summary>
    /// clear_page of a 4 KiB frame on <paramref name="memNode"/> by a CPU of <paramref name="cpuNode"/>:
    /// bandwidth-bound stores, slower to a remote node by the ratio of the memory latencies.
    /// </summary>
    public long ClearPage(int cpuNode, int memNode) => _c.ClearPageNs * _dram[cpuNode * Nodes + memNode] / _c.DramLocalNs;
}
