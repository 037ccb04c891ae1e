package dev.picket.opensearch;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * One OpenSearch node in this JVM, for tests: the real server from Maven Central with the
 * plugins the collector's store needs, started without the bootstrap checks and the
 * security manager (which only a packaged install has).
 *
 * <p>Arguments are node settings, {@code key=value} each; a value with commas under a
 * list setting ({@code discovery.seed_hosts}, {@code cluster.initial_cluster_manager_nodes})
 * is a list. {@code path.home} is required. Prints {@code PICKET-OPENSEARCH-READY} on
 * standard output once the node has started; runs until killed (SIGTERM closes it) or
 * until the process that started it is gone (a test killed mid-run leaves no node).
 */
public final class TestNode extends Node {
    private static final List<String> LIST_SETTINGS =
        List.of("discovery.seed_hosts", "cluster.initial_cluster_manager_nodes");

    private TestNode(Environment environment) {
        super(
            environment,
            List.of(Netty4Plugin.class, PainlessPlugin.class, CommonAnalysisPlugin.class),
            true
        );
    }

    public static void main(String[] args) throws Exception {
        // First: a test killed while the node starts must not leave it running.
        watchParent();
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                System.err.println("picket-opensearch: not key=value: " + arg);
                System.exit(2);
            }
            String key = arg.substring(0, eq);
            String value = arg.substring(eq + 1);
            if (LIST_SETTINGS.contains(key)) {
                builder.putList(key, Arrays.asList(value.split(",")));
            } else {
                builder.put(key, value);
            }
        }
        Settings settings = builder.build();
        String home = settings.get("path.home");
        if (home == null) {
            System.err.println("picket-opensearch: path.home=... is required");
            System.exit(2);
        }
        Files.createDirectories(Path.of(home, "config"));
        Files.createDirectories(Path.of(home, "plugins"));
        Files.createDirectories(Path.of(home, "modules"));

        String name = settings.get("node.name", "picket-test");
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(name);
        LogConfigurator.configureWithoutConfig(settings);

        Environment environment =
            InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> name);
        TestNode node = new TestNode(environment);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            }
            closed.countDown();
        }));
        node.start();
        System.out.println("PICKET-OPENSEARCH-READY " + name);
        System.out.flush();
        closed.await();
    }

    /** Exits (closing the node through the shutdown hook) once the parent process is gone. */
    private static void watchParent() {
        ProcessHandle.current().parent().ifPresent(parent -> {
            Thread watcher = new Thread(() -> {
                while (parent.isAlive()) {
                    try {
                        Thread.sleep(1000);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                System.exit(0);
            }, "picket-parent-watch");
            watcher.setDaemon(true);
            watcher.start();
        });
    }
}
