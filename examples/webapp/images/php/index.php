<?php
// The page: the worker's latest messages, read from the database.
$db = new mysqli(getenv('DB_HOST'), getenv('DB_USER'), getenv('DB_PASSWORD'), getenv('DB_NAME'));
$db->query('CREATE TABLE IF NOT EXISTS messages (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)');
$rows = $db->query('SELECT body, at FROM messages ORDER BY id DESC LIMIT 5');
header('Content-Type: text/plain');
echo "served by " . gethostname() . "\n";
while ($r = $rows->fetch_assoc()) {
    echo "{$r['at']}  {$r['body']}\n";
}
