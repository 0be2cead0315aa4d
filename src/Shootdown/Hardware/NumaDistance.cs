using System.Text.Json;
using System.Text.Json.Serialization;

namespace Shootdown.Hardware;

/// <summary>
/// The NUMA distance matrix (ACPI SLIT, as `numactl --hardware` prints it): 10 on the diagonal,
/// larger across nodes. Remote IPI latency and lock hand-offs scale linearly with the distance
/// relative to <see cref="Reference"/>, the distance the cost constants are given for.
/// </summary>
[JsonConverter(typeof(NumaDistanceConverter))]
public sealed class NumaDistance : IEquatable<NumaDistance>
{
    /// <summary>The distance the remote cost constants stand for (a 2015 4-socket Xeon's SLIT: 10 local, 21 remote).</summary>
    public const int Reference = 21;

    private readonly int[][] _rows;

    public NumaDistance(int[][] rows)
    {
        _rows = rows.Select(r => (int[])r.Clone()).ToArray();
    }

    public int Nodes => _rows.Length;

    public int this[int from, int to] => _rows[from][to];

    /// <summary>10 on the diagonal, <see cref="Reference"/> elsewhere.</summary>
    public static NumaDistance Uniform(int nodes) =>
        new(Enumerable.Range(0, nodes).Select(a => Enumerable.Range(0, nodes).Select(b => a == b ? 10 : Reference).ToArray()).ToArray());

    /// <summary>A remote cost scaled by the distance between two nodes (same node: not called).</summary>
    public long Scale(long remoteNs, int from, int to) =>
        _rows[from][to] == Reference ? remoteNs : remoteNs * _rows[from][to] / Reference;

    /// <summary>Checks the shape and values; throws <see cref="ConfigException"/> naming the key numa_distance.</summary>
    public void Validate(int nodes)
    {
        if (_rows.Length != nodes || _rows.Any(r => r.Length != nodes))
        {
            throw new ConfigException($"numa_distance must be {nodes} rows of {nodes} distances (one per node), got {_rows.Length} rows of {string.Join("/", _rows.Select(r => r.Length).Distinct())}", "numa_distance");
        }
        for (int a = 0; a < nodes; a++)
        {
            for (int b = 0; b < nodes; b++)
            {
                int d = _rows[a][b];
                if (a == b ? d != 10 : d is < 11 or > 254)
                {
                    throw new ConfigException($"numa_distance[{a}][{b}] is {d}; the diagonal must be 10 and other distances in 11..254", "numa_distance");
                }
            }
        }
    }

    public int[][] ToArray() => _rows.Select(r => (int[])r.Clone()).ToArray();

    public bool Equals(NumaDistance? other) =>
        other is not null && _rows.Length == other._rows.Length && _rows.Zip(other._rows).All(p => p.First.AsSpan().SequenceEqual(p.Second));

    public override bool Equals(object? obj) => Equals(obj as NumaDistance);

    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (int[] r in _rows)
        {
            foreach (int d in r)
            {
                h.Add(d);
            }
        }
        return h.ToHashCode();
    }
}

/// <summary>Reads and writes the matrix as an array of rows: [[10, 21], [21, 10]].</summary>
public sealed class NumaDistanceConverter : JsonConverter<NumaDistance>
{
    public override NumaDistance Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        int[][]? rows;
        try
        {
            rows = JsonSerializer.Deserialize<int[][]>(ref reader);
        }
        catch (JsonException)
        {
            throw new JsonException("expected an array of rows of integer distances, e.g. [[10, 21], [21, 10]]");
        }
        if (rows is null || rows.Any(r => r is null))
        {
            throw new JsonException("expected an array of rows of integer distances, e.g. [[10, 21], [21, 10]]");
        }
        return new NumaDistance(rows);
    }

    /// <summary>On one line, rows as numactl prints them: [[10, 21], [21, 10]].</summary>
    public override void Write(Utf8JsonWriter writer, NumaDistance value, JsonSerializerOptions options) =>
        writer.WriteRawValue("[" + string.Join(", ", value.ToArray().Select(r => "[" + string.Join(", ", r) + "]")) + "]");
}
