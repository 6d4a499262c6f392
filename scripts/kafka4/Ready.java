// Readiness probe for scripts/kafka4.sh: exits 0 once the broker answers a
// metadata request (DescribeCluster) with at least one node. Arg: bootstrap.
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

public class Ready {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
    try (Admin admin = Admin.create(p)) {
      DescribeClusterResult r = admin.describeCluster();
      int nodes = r.nodes().get(10, TimeUnit.SECONDS).size();
      String id = r.clusterId().get(10, TimeUnit.SECONDS);
      if (nodes < 1) {
        System.err.println("kafka4: no brokers in metadata");
        System.exit(2);
      }
      System.err.println("kafka4: ready: cluster " + id + ", " + nodes + " node(s)");
    }
  }
}
