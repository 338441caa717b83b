<?php
// The worker: every EVERY_SECONDS, MESSAGE into the database.
$every = (int) (getenv('EVERY_SECONDS') ?: 5);
$message = getenv('MESSAGE') ?: 'tick';
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () { exit(0); });
while (true) {
    try {
        $db = new mysqli(getenv('DB_HOST'), getenv('DB_USER'), getenv('DB_PASSWORD'), getenv('DB_NAME'));
        $db->query('CREATE TABLE IF NOT EXISTS messages (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)');
        $stmt = $db->prepare('INSERT INTO messages (body) VALUES (?)');
        $stmt->bind_param('s', $message);
        $stmt->execute();
        echo date('H:i:s') . " wrote: $message\n";
    } catch (mysqli_sql_exception $e) {
        echo "db: " . $e->getMessage() . "\n";
    }
    sleep($every);
}
